"""Safe files: atomic writes, checksummed checkpoints with a previous copy, one writer per folder.

A crash, Ctrl-C or full disk never leaves a half-written file in place of a good one, and a
checkpoint is only ever read with ``torch.load(weights_only=True)``: nothing in it can run code.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import pickle
import random
import socket
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

log = logging.getLogger(__name__)

#: a checkpoint's digests, beside it: ``{"sha256": [newest, ...]}``.
CHECKSUMS_SUFFIX = ".sha256.json"
#: the previous good checkpoint, kept when a new one replaces it.
PREVIOUS_SUFFIX = ".prev"
# Files a checkpoint write can leave at any moment: the one being written, the current and the previous.
_DIGESTS_KEPT = 3


class CheckpointError(RuntimeError):
    """No usable checkpoint; the message is one line."""


class DiskFullError(OSError):
    """A write failed for lack of space; the message is one line that names the file."""

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(path: Path, needed_bytes: int, hint: str) -> DiskFullError:
    """The one-line error for a write of ``needed_bytes`` to ``path`` that found no space."""
    megabytes = max(1, -(-needed_bytes // (1 << 20)))
    return DiskFullError(errno.ENOSPC, f"no space left on device writing {path}; free {megabytes} MB {hint}")


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes, hint: str = "on that file system") -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    :raises DiskFullError: the file system is full (``path`` is left as it was).
    """
    try:
        _atomic_write(path, lambda f: f.write(data))
    except OSError as error:
        if is_disk_full(error):
            raise disk_full_error(path, len(data), hint) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def remove_stale_temporaries(folder: Path, name: str) -> None:
    """Remove the temporary files that killed writers of ``folder/name`` left behind.

    Only for a folder with one writer (held by :class:`DirectoryLock`): any temporary there is stale.
    """
    for stale in Path(folder).glob(f".{name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _serialise(obj: Any) -> bytes:
    # In memory first: the digest needs the bytes, and a failed write is then a plain OSError
    # (torch's stream writer turns it into an opaque RuntimeError).
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def atomic_save(obj: Any, path: Path, hint: str = "on that file system") -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    atomic_write_bytes(path, _serialise(obj), hint)


def previous_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}{PREVIOUS_SUFFIX}{path.suffix}")


def _checksums_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + CHECKSUMS_SUFFIX)


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _known_digests(path: Path) -> Optional[list[str]]:
    """The recorded digests of ``path``'s checkpoints, or ``None`` when there is no readable record."""
    try:
        digests = json.loads(_checksums_path(path).read_text())["sha256"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ignoring unreadable %s (%s)", _checksums_path(path), error)
        return None
    return [d for d in digests if isinstance(d, str)] if isinstance(digests, list) else None


def save_checkpoint(state: dict, path: Path, hint: str = "on that file system") -> None:
    """Save ``state`` to ``path`` with its sha256 recorded beside it; a verified previous
    ``path`` becomes ``<stem>.prev<suffix>``.

    The digests are recorded before the files move, and a file counts as good when its digest is
    among those recorded, so a crash between any two steps leaves at least one good checkpoint.
    """
    path = Path(path)
    data = _serialise(state)
    digest = hashlib.sha256(data).hexdigest()
    known = _known_digests(path)
    current = _digest(path) if path.is_file() else None
    if known is None:  # written before digests were recorded: trust it once
        known = [] if current is None else [current]
    current_is_good = current is not None and current in known
    atomic_write_text(_checksums_path(path), json.dumps({"sha256": [digest, *known][:_DIGESTS_KEPT]}) + "\n")
    if current_is_good:
        os.replace(path, previous_path(path))
    atomic_write_bytes(path, data, hint)


def load_checkpoint(path: Path, map_location=None, trusted: bool = False) -> tuple[dict, Path]:
    """The newest good checkpoint among ``path`` and its previous copy: ``(state, file)``.

    :param trusted: a checkpoint that a weights-only load refuses (version 0.1 pickled numpy
        RNG states) is loaded in full, which can run code: only for run directories the user trusts.

    A missing, truncated or altered file (its sha256 not recorded) is skipped with a warning.
    A checkpoint without a record (written before records existed) is loaded unverified.

    :raises CheckpointError: neither file is usable.
    """
    path = Path(path)
    known = _known_digests(path)
    problems = []
    for candidate in (path, previous_path(path)):
        if not candidate.is_file():
            continue
        if known is not None and _digest(candidate) not in known:
            problems.append(f"{candidate.name} is damaged (its sha256 does not match {_checksums_path(path).name})")
            continue
        try:
            state = torch.load(candidate, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            if not trusted:
                problems.append(
                    f"{candidate.name} holds objects that a weights-only load refuses (written by pyro-ccvae 0.1?); "
                    "pass --trust-run to load it in full if you trust it"
                )
                continue
            log.warning("%s is loaded in full (not weights-only), as trusted", candidate)
            state = torch.load(candidate, map_location=map_location, weights_only=False)
        except Exception as error:  # a truncated or otherwise damaged zip
            problems.append(f"{candidate.name} cannot be read ({' '.join(str(error).split()[:12])})")
            continue
        if problems:
            log.warning("%s; using %s instead", "; ".join(problems), candidate)
        return state, candidate
    if not problems:
        raise CheckpointError(f"{path.parent} holds no {path.name}")
    raise CheckpointError(f"no usable checkpoint in {path.parent}: {'; '.join(problems)}")


def checkpoint_exists(path: Path) -> bool:
    """Whether ``path`` or its previous copy is there (good or not)."""
    return Path(path).is_file() or previous_path(path).is_file()


class ForeignDirectoryError(ValueError):
    """An output folder that holds someone else's files; the message is one line."""


def read_json_object(path: Path) -> Optional[dict]:
    """The JSON object in ``path``, or ``None`` if it is missing or not a JSON object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def check_own_directory(folder: Path, config_name: str, is_ours, what: str, ignore: tuple[str, ...] = ()) -> None:
    """Refuse an existing, non-empty ``folder`` unless its ``config_name`` is one of ours
    (``is_ours(config)`` on its JSON object), so that ``--out`` never overwrites a user's files.

    :param ignore: names that do not make a folder non-empty (our own lock file).
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ForeignDirectoryError(f"{folder} is a file, not a directory; choose another --out")
    if not any(entry.name not in ignore for entry in folder.iterdir()):
        return
    config = read_json_object(folder / config_name)
    if config is None or not is_ours(config):
        raise ForeignDirectoryError(
            f"{folder} is not empty and holds no {config_name} of a {what}; refusing to write into it, choose another --out"
        )


class DirectoryLock:
    """An exclusive ``flock`` on ``folder/name``: one writer per folder. The kernel releases it
    when the process dies, so a killed run never leaves it stuck."""

    def __init__(self, folder: Path, name: str):
        self.path = Path(folder) / name
        self._file = None

    def acquire(self) -> bool:
        """Take the lock; ``False`` (at once) if another process holds it."""
        if self._file is not None:
            return True
        file = open(self.path, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        file.seek(0)
        file.truncate()
        file.write(f"{socket.gethostname()} {os.getpid()}\n")  # who holds it, for the curious
        file.flush()
        self._file = file
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""


# RNG states as tensors and plain lists, so that a checkpoint loads with weights_only=True.


def rng_state() -> dict:
    """Every random number generator training touches, for exact resumption."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
