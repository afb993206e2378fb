"""Safe files: atomic writes, checksummed checkpoints with a previous copy, one writer per folder.

A crash, Ctrl-C or full disk never leaves a half-written file in place of a good one, and a
checkpoint is only ever read with ``torch.load(weights_only=True)``: nothing in it can run code.

Files are never written through a symbolic link: a file is created under a temporary name in its
folder and renamed over the old one (the rename replaces a link, it does not follow it), and an
existing file is opened with ``O_NOFOLLOW``. On a shared file system anyone who can write a run
directory could otherwise make our writes land in another user's files. New files get the mode
``0o666`` less the umask, like any other tool's.

File-system faults (a name too long, a file-size limit, a folder where a file belongs, a link, a
FIFO) become one-line errors that name the path: :class:`PathError`, or :class:`DiskFullError`
(and :class:`FileTooLargeError`) for a write that found no room.
"""
from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import io
import json
import logging
import os
import pickle
import random
import resource
import secrets
import socket
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from .errors import UserError

log = logging.getLogger(__name__)

#: a checkpoint's digests, beside it: ``{"sha256": [newest, ...]}``.
CHECKSUMS_SUFFIX = ".sha256.json"
#: the previous good checkpoint, kept when a new one replaces it.
PREVIOUS_SUFFIX = ".prev"
# Files a checkpoint write can leave at any moment: the one being written, the current and the previous.
_DIGESTS_KEPT = 3
#: characters of a file's name kept in its temporary name (``.<name>.<8 hex>.tmp`` must fit the
#: usual 255-byte limit on a name even when ``<name>`` nearly fills it).
_TEMPORARY_NAME_KEPT = 200
#: components longer than this are shortened in messages (a 300-character name fills a terminal).
_SHOWN_NAME_MAX = 40


class CheckpointError(RuntimeError):
    """No usable checkpoint; the message is one line."""


class PathError(UserError):
    """A file or folder that cannot be used as it is: a symbolic link, a folder where a file
    belongs or a file where a folder belongs, a name longer than the file system allows, a FIFO
    or device in place of a file, no permission. The message is one line that names the path and
    says what to do."""


class DiskFullError(OSError):
    """A write failed for lack of space; the message is one line that names the file."""

    def __str__(self) -> str:
        return self.strerror


class FileTooLargeError(DiskFullError):
    """A write beyond this process's file-size limit (``ulimit -f``). Like a full disk, it leaves
    the file as it was; the message is one line that names the file and the limit."""


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(path: Path, needed_bytes: int, hint: str) -> DiskFullError:
    """The one-line error for a write of ``needed_bytes`` to ``path`` that found no space."""
    megabytes = max(1, -(-needed_bytes // (1 << 20)))
    return DiskFullError(errno.ENOSPC, f"no space left on device writing {shown(path)}; free {megabytes} MB {hint}")


# --- one-line messages for file-system faults -------------------------------------------------


def shown(path) -> str:
    """``path`` for a message, each name longer than :data:`_SHOWN_NAME_MAX` characters cut
    (``runs/aaaaaaaaaaaaaaaa...(300 characters)``)."""
    parts = []
    for part in str(path).split(os.sep):
        parts.append(part if len(part) <= _SHOWN_NAME_MAX else f"{part[:16]}...({len(part)} characters)")
    return os.sep.join(parts)


def _name_max(path: Path) -> int:
    """The longest name (bytes) the file system of ``path``'s nearest existing folder allows."""
    for folder in [Path(path), *Path(path).parents]:
        try:
            return os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return 255


def _file_size_limit() -> Optional[int]:
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _blocking_ancestor(path: Path) -> Optional[Path]:
    """The first of ``path``'s folders that exists but is not a folder."""
    for folder in reversed(Path(path).parents):
        if os.path.lexists(folder) and not folder.is_dir():
            return folder
    return None


def path_error(error: OSError, path, doing: str, hint: str = "on that file system", size: int = 0) -> OSError:
    """The one-line error for ``error``, met while ``doing`` (``"write"``, ``"read"``, ...) ``path``:
    a :class:`DiskFullError` or :class:`FileTooLargeError` for a write that found no room, a
    :class:`PathError` for the other faults we know, and otherwise a :class:`PathError` with the
    system's words. ``hint``: where else to write (``"there, or pass --out on another disk"``)."""
    path = Path(path)
    where = shown(path)
    code = error.errno
    if is_disk_full(error):
        return disk_full_error(path, size, hint)
    if code == errno.EFBIG:
        limit = _file_size_limit()
        limit_text = f" of {limit} bytes" if limit is not None else ""
        return FileTooLargeError(
            errno.EFBIG,
            f"writing {where} passes this process's file-size limit{limit_text} (ulimit -f); "
            "raise the limit (ulimit -f unlimited) or write a smaller file",
        )
    if code == errno.ENAMETOOLONG:
        name_max = _name_max(path)
        long_names = [part for part in path.parts if len(os.fsencode(part)) > name_max]
        if long_names:
            return PathError(
                f"{where}: the name {shown(long_names[0])} has {len(os.fsencode(long_names[0]))} bytes, more than the "
                f"{name_max} the file system allows; choose a shorter name"
            )
        return PathError(f"{where}: the path is longer than the file system allows; choose a shorter one")
    if code == errno.EISDIR:
        return PathError(f"{where} is a folder where a file belongs; move it away (or remove it) and run again")
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocking = _blocking_ancestor(path) or (path if os.path.lexists(path) and not path.is_dir() else None)
        if blocking is not None:
            return PathError(f"{shown(blocking)} is a file where a folder belongs; check the path, or move the file away and run again")
    if code == errno.ELOOP:
        return PathError(
            f"{where} is a symbolic link; files are not read or written through links (they could reach files "
            "elsewhere): replace the link with the file itself, or remove it"
        )
    if code in (errno.EACCES, errno.EPERM):
        return PathError(f"permission denied to {doing} {where}; change its permissions or choose another path")
    if code == errno.EROFS:
        return PathError(f"cannot {doing} {where}: the file system is read-only; choose another path")
    return PathError(f"cannot {doing} {where}: {error.strerror or error}")


@contextmanager
def file_errors(path, doing: str, hint: str = "on that file system") -> Iterator[None]:
    """Turn an ``OSError`` met inside the block into :func:`path_error`'s one-line error about
    ``path``; a missing file (``FileNotFoundError``) passes through for the caller to handle."""
    try:
        yield
    except (FileNotFoundError, PathError, DiskFullError):
        raise
    except OSError as error:
        raise path_error(error, path, doing, hint) from None


# --- reading and writing without following links ----------------------------------------------


def read_file(path, max_bytes: Optional[int] = None) -> bytes:
    """The bytes of the regular file ``path``, opened without following a link and without
    blocking (a FIFO in place of a file would otherwise hang the reader).

    :raises FileNotFoundError: it does not exist.
    :raises PathError: it is a link, a folder, a FIFO or device, or larger than ``max_bytes``.
    """
    path = Path(path)
    with file_errors(path, "read"):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise PathError(f"{shown(path)} is a folder where a file belongs; move it away (or remove it) and run again")
            if not stat.S_ISREG(info.st_mode):
                raise PathError(f"{shown(path)} is not a regular file (a FIFO, socket or device); replace it with the file, or remove it")
            if max_bytes is not None and info.st_size > max_bytes:
                raise PathError(f"{shown(path)} has {info.st_size} bytes, more than the {max_bytes} such a file can have; it is not ours")
            os.set_blocking(fd, True)
            return file.read()


def read_text(path, max_bytes: Optional[int] = None) -> str:
    """:func:`read_file` decoded as UTF-8; undecodable bytes are a :class:`PathError`."""
    data = read_file(path, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PathError(f"{shown(path)} is not UTF-8 text (byte {error.start}); the file is damaged") from None


def _temporary_name(name: str) -> str:
    return f".{name[:_TEMPORARY_NAME_KEPT]}.{secrets.token_hex(4)}.tmp"


def make_folder(path) -> Path:
    """Create the folder ``path`` (and its parents) if needed; a one-line :class:`PathError` when a
    file stands where it or a parent belongs, or when it is a symbolic link."""
    path = Path(path)
    with file_errors(path, "create"):
        if os.path.islink(path):
            raise PathError(
                f"{shown(path)} is a symbolic link where a folder belongs; files are not written through links "
                "(they could change files elsewhere): replace it with a folder, or remove it"
            )
        path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_write(path: Path, write, before_replace: Optional[Callable[[], None]] = None) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path`` and rename it over
    ``path``; ``before_replace()`` runs once the new file is complete, just before the rename."""
    path = Path(path)
    if not path.parent.is_dir():
        make_folder(path.parent)
    temporary = path.parent / _temporary_name(path.name)
    # os.open, not mkstemp: mkstemp's files are 0600 whatever the umask.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)  # replaces a link at ``path``; never writes through it
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(
    path: Path, data: bytes, hint: str = "on that file system", before_replace: Optional[Callable[[], None]] = None
) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``
    (``before_replace()`` runs just before the rename, once the new file is complete).

    :raises DiskFullError: the file system is full (``path`` is left as it was); a
        :class:`FileTooLargeError` beyond the file-size limit.
    :raises PathError: another file-system fault, in one line naming ``path``.
    """
    try:
        _atomic_write(path, lambda f: f.write(data), before_replace)
    except (PathError, DiskFullError):
        raise
    except OSError as error:
        raise path_error(error, path, "write", hint, size=len(data)) from None


def atomic_write_text(path: Path, text: str, hint: str = "on that file system") -> None:
    atomic_write_bytes(path, text.encode(), hint)


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing), without following a link."""
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "ab") as f:
            f.write(data)
    except OSError as error:
        raise path_error(error, path, "write", size=len(data)) from None


def remove_stale_temporaries(folder: Path, name: str) -> None:
    """Remove the temporary files that killed writers of ``folder/name`` left behind.

    Only for a folder with one writer (held by :class:`DirectoryLock`): any temporary there is stale.
    """
    for stale in Path(folder).glob(f".{glob.escape(name[:_TEMPORARY_NAME_KEPT])}.*.tmp"):
        stale.unlink(missing_ok=True)


def check_no_links(folder: Path, what: str) -> None:
    """A one-line :class:`PathError` naming the first symbolic link inside ``folder`` (at any depth).

    A run or judge directory holds its own files; a link in it would make a later write or read
    reach a file elsewhere (writes never follow links, but the directory is not what it seems).
    ``folder`` itself may be a link: where a user keeps a run is their choice.
    """
    for root, folders, files in os.walk(folder):  # does not enter linked folders: they are listed, and refused
        for name in sorted(folders + files):
            entry = Path(root) / name
            if entry.is_symlink():
                try:
                    target = os.readlink(entry)
                except OSError:
                    target = "?"
                raise PathError(
                    f"{shown(entry)} is a symbolic link (to {shown(target)}); a {what} holds its own files, and a link "
                    "would let its writes or reads reach files elsewhere: replace the link with the file itself, or remove it"
                )


# --- checkpoints --------------------------------------------------------------------------------


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


def checksums_path(path: Path) -> Path:
    """Where the sha256 digests of the checkpoint ``path`` are recorded."""
    return Path(path).with_name(Path(path).name + CHECKSUMS_SUFFIX)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> Optional[str]:
    """The sha256 of the regular file ``path`` (read without following a link); ``None`` when it
    is missing or not a regular file."""
    try:
        return sha256_of(read_file(path))
    except (FileNotFoundError, PathError):
        return None


def _known_digests(path: Path) -> Optional[list[str]]:
    """The recorded digests of ``path``'s checkpoints, or ``None`` when there is no readable record."""
    record = checksums_path(path)
    try:
        digests = json.loads(read_text(record, max_bytes=1 << 16))["sha256"]
    except FileNotFoundError:
        return None
    except (PathError, ValueError, KeyError, TypeError, RecursionError) as error:
        log.warning("ignoring unreadable %s (%s)", record, " ".join(str(error).split()))
        return None
    return [d for d in digests if isinstance(d, str)] if isinstance(digests, list) else None


def newest_digest(path: Path) -> Optional[str]:
    """The digest recorded last for the checkpoint ``path`` (the one written last), if any."""
    known = _known_digests(path)
    return known[0] if known else None


def save_checkpoint(state: dict, path: Path, hint: str = "on that file system") -> str:
    """Save ``state`` to ``path`` with its sha256 recorded beside it; a verified previous
    ``path`` becomes ``<stem>.prev<suffix>``. Returns the new file's sha256.

    The digests are recorded before the files move, and a file counts as good when its digest is
    among those recorded, so a crash between any two steps leaves at least one good checkpoint.
    """
    path = Path(path)
    data = _serialise(state)
    digest = sha256_of(data)
    known = _known_digests(path)
    current = file_digest(path)  # None for a link or a FIFO: never moved, replaced below
    if known is None:  # written before digests were recorded: trust it once
        known = [] if current is None else [current]
    current_is_good = current is not None and current in known
    atomic_write_text(checksums_path(path), json.dumps({"sha256": [digest, *known][:_DIGESTS_KEPT]}) + "\n", hint)

    def keep_current_as_previous() -> None:
        with file_errors(previous_path(path), "write", hint):
            _keep_as_previous(path)

    atomic_write_bytes(path, data, hint, before_replace=keep_current_as_previous if current_is_good else None)
    return digest


def _keep_as_previous(path: Path) -> None:
    """Make the checkpoint ``path`` its previous copy too, leaving ``path`` in place: a hard link
    under a temporary name renamed over the previous copy. A reader (an analysis command while
    training writes) then always finds ``path``, the old one or the new one, whole; moving it away
    left a gap of a whole file write in which only the previous copy was there. On a file system
    without hard links, it is moved (that gap again, but never a damaged file)."""
    previous = previous_path(path)
    temporary = previous.parent / _temporary_name(previous.name)
    try:
        os.link(path, temporary, follow_symlinks=False)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
        os.replace(path, previous)
        return
    try:
        os.replace(temporary, previous)
    except BaseException:
        os.unlink(temporary)
        raise


@dataclass
class LoadedCheckpoint:
    """A checkpoint read by :func:`read_checkpoint`."""

    state: dict
    #: the file read: the checkpoint or its previous copy.
    file: Path
    #: the sha256 of the bytes read.
    sha256: str
    #: whether that digest was among the recorded ones (``False``: there was no record).
    verified: bool


def read_checkpoint(path: Path, map_location=None, trusted: bool = False) -> LoadedCheckpoint:
    """The newest good checkpoint among ``path`` and its previous copy.

    :param trusted: a checkpoint that a weights-only load refuses (version 0.1 pickled numpy
        RNG states) is loaded in full, which can run code: only for run directories the user trusts.

    A missing, truncated or altered file (its sha256 not recorded) is skipped with a warning.
    A checkpoint without a record (written before records existed, or the record deleted) is
    loaded unverified, with a warning. Each file is read once, and its digest and contents come
    from the same bytes (a file replaced between a check and a load cannot slip through).

    :raises CheckpointError: neither file is usable.
    """
    path = Path(path)
    known = _known_digests(path)
    problems = []
    for candidate in (path, previous_path(path)):
        try:
            data = read_file(candidate)
        except FileNotFoundError:
            continue
        except PathError as error:
            problems.append(str(error))
            continue
        digest = sha256_of(data)
        if known is not None and digest not in known:
            known = _known_digests(path)  # a writer may have recorded it since: read the record again
            if known is not None and digest not in known:
                problems.append(f"{candidate.name} is damaged (its sha256 does not match {checksums_path(path).name})")
                continue
        try:
            state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            if not trusted:
                problems.append(
                    f"{candidate.name} holds objects that a weights-only load refuses (written by pyro-ccvae 0.1?); "
                    "pass --trust-run to load it in full if you trust it"
                )
                continue
            log.warning("%s is loaded in full (not weights-only), as trusted", candidate)
            state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
        except Exception as error:  # a truncated or otherwise damaged zip
            problems.append(f"{candidate.name} cannot be read ({' '.join(str(error).split()[:12])})")
            continue
        if not isinstance(state, dict):
            problems.append(f"{candidate.name} holds a {type(state).__name__}, not a checkpoint")
            continue
        if problems:
            log.warning("%s; using %s instead", "; ".join(problems), candidate)
        if known is None:
            log.warning(
                "%s has no sha256 record (%s is missing or unreadable): loaded unverified; a damaged file would go unnoticed",
                candidate, checksums_path(path).name,
            )  # fmt: skip
        return LoadedCheckpoint(state, candidate, digest, known is not None)
    if not problems:
        raise CheckpointError(f"{shown(path.parent)} holds no {path.name}")
    raise CheckpointError(f"no usable checkpoint in {shown(path.parent)}: {'; '.join(problems)}")


def load_checkpoint(path: Path, map_location=None, trusted: bool = False) -> tuple[dict, Path]:
    """``(state, file)`` of :func:`read_checkpoint`."""
    loaded = read_checkpoint(path, map_location, trusted)
    return loaded.state, loaded.file


def checkpoint_exists(path: Path) -> bool:
    """Whether ``path`` or its previous copy is there (good or not)."""
    return os.path.lexists(path) or os.path.lexists(previous_path(path))


# --- folders of our own ---------------------------------------------------------------------------


class ForeignDirectoryError(UserError):
    """An output folder that holds someone else's files; the message is one line."""


def read_json_object(path: Path) -> Optional[dict]:
    """The JSON object in ``path``, or ``None`` if it is missing or not a JSON object."""
    try:
        value = json.loads(read_text(path, max_bytes=1 << 24))
    except (OSError, ValueError, RecursionError):  # PathError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def check_own_directory(folder: Path, config_name: str, is_ours, what: str, ignore: tuple[str, ...] = ()) -> None:
    """Refuse an existing, non-empty ``folder`` unless its ``config_name`` is one of ours
    (``is_ours(config)`` on its JSON object), so that ``--out`` never overwrites a user's files.

    :param ignore: names that do not make a folder non-empty (our own lock file).
    """
    folder = Path(folder)
    with file_errors(folder, "read"):
        if not os.path.lexists(folder):
            _check_name_lengths(folder)  # said now, not by the first file written
            blocking = _blocking_ancestor(folder)
            if blocking is not None:
                raise PathError(f"{shown(blocking)} is a file where a folder belongs; choose another --out")
            return
        if not folder.is_dir():
            raise ForeignDirectoryError(f"{shown(folder)} is a file, not a directory; choose another --out")
        if not any(entry.name not in ignore for entry in folder.iterdir()):
            return
    config = read_json_object(folder / config_name)
    if config is None or not is_ours(config):
        raise ForeignDirectoryError(
            f"{shown(folder)} is not empty and holds no {config_name} of a {what}; refusing to write into it, choose another --out"
        )


def _check_name_lengths(path: Path) -> None:
    """A :class:`PathError` when a name in ``path`` is longer than its file system allows (said
    before anything is created, rather than by the first file written)."""
    name_max = _name_max(path)
    for part in Path(path).parts:
        if len(os.fsencode(part)) > name_max:
            raise path_error(OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG)), path, "create")


class DirectoryLock:
    """An exclusive ``flock`` on ``folder/name``: one writer per folder. The kernel releases it
    when the process dies, so a killed run never leaves it stuck. The lock file is opened without
    following a link (its holder's name is written into it)."""

    def __init__(self, folder: Path, name: str):
        self.path = Path(folder) / name
        self._fd: Optional[int] = None

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock; ``False`` (at once) if another process holds it, unless ``wait``.

        :raises PathError: the lock file is a link, a folder or not a regular file.
        """
        if self._fd is not None:
            return True
        with file_errors(self.path, "open"):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PathError(f"{shown(self.path)} is not a regular file (our lock file); remove it and run again")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}\n".encode(), 0)  # who holds it, for the curious
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def holder(self) -> str:
        try:
            return read_text(self.path, max_bytes=4096).strip()
        except (OSError, ValueError):
            return ""

    def __enter__(self) -> "DirectoryLock":
        self.acquire(wait=True)
        return self

    def __exit__(self, *exc) -> None:
        self.release()


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
