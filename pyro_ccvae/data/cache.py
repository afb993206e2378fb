"""The decoded-image cache (docs/data.md, The cache): decode and resize once, memory-map ever after.

A cache is a ``uint8`` ``.npy`` file ``[N, C, H, W]`` holding every image of a data set in source
order, plus a small JSON file beside it (the images that could not be read). Its name carries a
key: a hash of the source (the index files' names, sizes and modification times, and the list of
image paths) and of the options that change pixels (size, crop, views, channels). Change either
and the key changes, so the cache is rebuilt; old caches are left for the user to delete.

Files are written to a temporary name in the same directory and moved into place with
:func:`os.replace`, so a reader never sees half a cache and two processes building the same one
do not corrupt each other; a temporary file carries its host and process id, so a later build
removes those of killed builds. The file is reserved (``posix_fallocate``) before it is filled,
so a full disk is an error, not a bus error on a page of the memory map. Reads memory-map (``mmap_mode="c"``: copy-on-write, so torch gets a
writable array and nothing is ever written back to the file).

A split that is not a contiguous run of the cache (CheXpert's validation patients, MNIST's
validation digits, images left out with ``skip_bad_images``) is gathered once, without decoding,
into its own cache file named after the rows it holds, and memory-mapped in turn.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..checkpoint import disk_full_error, is_disk_full
from .base import DataError, DataOptions

log = logging.getLogger("pyro_ccvae.data")

#: bump when the cache's contents change meaning, so old caches are not read.
CACHE_VERSION = 1
_GATHER_ROWS = 4096


def cache_dir(options: DataOptions, data_root: Path) -> Path:
    """Where the caches of the data set in ``data_root`` live.

    ``options.cache_dir`` if given; else ``<data_root>/.ccvae-cache`` if it can be written; else
    ``$XDG_CACHE_HOME/pyro-ccvae`` (``~/.cache/pyro-ccvae``).
    """
    if options.cache_dir is not None:
        directory = Path(options.cache_dir).expanduser()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(
                f"cannot create cache directory {directory} ({error.strerror}); pass a writable --cache-dir"
            ) from None
        if not os.access(directory, os.W_OK):
            raise DataError(f"cache directory {directory} is not writable; pass a writable --cache-dir")
        return directory
    local = Path(data_root) / ".ccvae-cache"
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local
    except OSError:
        pass
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyro-ccvae"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"neither {local} nor {home} can be written ({error.strerror}); pass a writable --cache-dir"
        ) from None
    return home


def source_key(dataset: str, *, files: Sequence[Path], items: Sequence[str], pixels: dict) -> str:
    """The cache key: a hash of the index ``files`` (name, size, mtime), the image ``items`` and ``pixels``."""
    stats = []
    for path in files:
        st = os.stat(path)
        stats.append([Path(path).name, st.st_size, st.st_mtime_ns])
    head = {"version": CACHE_VERSION, "dataset": dataset, "files": stats, "pixels": pixels, "n": len(items)}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    for item in items:
        digest.update(item.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


_HOST = socket.gethostname().replace(".", "_")


def _temporary(path: Path) -> Path:
    # Host and pid in the name: a later build can tell a dead builder's leftovers from a live one's.
    return path.with_name(f".{path.stem}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_killed_builds(path: Path) -> None:
    """Remove the temporary files of builds of ``path`` killed on this host (their process is gone)."""
    for stale in Path(path).parent.glob(f".{Path(path).stem}.*.tmp*"):
        parts = stale.name[len(Path(path).stem) + 2 :].split(".")
        if len(parts) < 3 or parts[0] != _HOST or not parts[1].isdigit():
            continue  # another host's, or not ours: leave it
        pid = int(parts[1])
        if pid != os.getpid() and not _process_alive(pid):
            log.info("removing %s, left by a killed cache build", stale)
            stale.unlink(missing_ok=True)


def _no_space(path: Path, size: int) -> OSError:
    return disk_full_error(path, size, "there or pass --cache-dir on another disk")


def _preallocate(path: Path, size: int) -> None:
    """Reserve ``size`` bytes for ``path`` so that a full disk is an ``OSError`` here, not a bus
    error (SIGBUS) when a page of the memory map is first written."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system without it: go on
            raise
    finally:
        os.close(fd)


def _write_json(path: Path, content: dict) -> None:
    tmp = _temporary(path)
    text = json.dumps(content)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as error:
        if is_disk_full(error):
            raise _no_space(path, len(text)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _write_npy(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> None:
    """Create ``path`` atomically: ``fill`` writes the rows of a memory-mapped temporary file."""
    remove_killed_builds(path)
    tmp = _temporary(path)
    size = int(np.prod(shape))
    try:
        if shape[0] == 0:
            np.save(tmp, np.zeros(shape, dtype=np.uint8))
        else:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            _preallocate(tmp, os.path.getsize(tmp))
            fill(out)
            out.flush()
            del out
        os.replace(tmp, path)
    except OSError as error:
        if is_disk_full(error):
            raise _no_space(path, size) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _open(path: Path, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """The cache at ``path`` memory-mapped, or ``None`` if it is missing or not the expected shape."""
    if not path.is_file():
        return None
    try:
        if shape[0] == 0:
            array = np.load(path)
        else:
            array = np.load(path, mmap_mode="c")
    except (OSError, ValueError) as error:
        log.warning("ignoring unreadable cache %s (%s)", path, error)
        return None
    if array.dtype != np.uint8 or tuple(array.shape) != tuple(shape):
        log.warning("ignoring cache %s: holds %s %s, expected uint8 %s", path, array.dtype, array.shape, shape)
        return None
    return array


class ImageCache:
    """Every image of a data set, decoded and resized, memory-mapped from one ``.npy`` file.

    :param path: the ``.npy`` file.
    :param array: its contents, memory-mapped ``uint8`` ``[N, C, H, W]``.
    :param bad: ``{row: reason}`` for images that could not be read (rows of zeros).
    """

    def __init__(self, path: Path, array: np.ndarray, bad: dict[int, str]):
        self.path = path
        self.array = array
        self.bad = bad

    @classmethod
    def load_or_build(
        cls,
        directory: Path,
        name: str,
        key: str,
        shape: tuple[int, ...],
        build: Callable[[np.ndarray], dict[int, str]],
    ) -> "ImageCache":
        """Memory-map the cache ``<directory>/<name>-<key>.npy``, building it first if needed.

        :param build: fills the array it is given (row ``i`` = item ``i``) and returns the
            ``{row: reason}`` of unreadable images. It may raise; then nothing is written.
        """
        path = Path(directory) / f"{name}-{key}.npy"
        meta_path = path.with_suffix(".json")
        array = _open(path, shape)
        if array is not None and meta_path.is_file():
            try:
                bad = {int(i): str(r) for i, r in json.loads(meta_path.read_text())["bad"].items()}
                return cls(path, array, bad)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                log.warning("ignoring cache %s: unreadable %s", path, meta_path.name)
        log.info("building the image cache %s (%d images)", path, shape[0])
        bad: dict[int, str] = {}

        def fill(out: np.ndarray) -> None:
            bad.update(build(out))

        _write_npy(path, shape, fill)
        # The metadata goes after the images: a cache is only used when both are there.
        _write_json(meta_path, {"key": key, "shape": list(shape), "bad": {str(i): r for i, r in sorted(bad.items())}})
        array = _open(path, shape)
        if array is None:  # pragma: no cover - we just wrote it
            raise DataError(f"cannot read back the cache {path}; delete it and retry, or pass another --cache-dir")
        return cls(path, array, bad)

    def rows(self, index: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The images at the increasing row numbers ``index``, as a ``uint8`` tensor that shares the memory map."""
        index = np.asarray(index, dtype=np.int64)
        shape = (len(index),) + tuple(self.array.shape[1:])
        if len(index) == 0:
            return torch.zeros(shape, dtype=torch.uint8)
        if np.any(np.diff(index) <= 0) or index[0] < 0 or index[-1] >= len(self.array):
            raise ValueError("rows() takes increasing row numbers within the cache")
        if index[-1] - index[0] == len(index) - 1:  # a contiguous run: a view, no copy
            return torch.from_numpy(self.array[index[0] : index[-1] + 1])
        digest = hashlib.sha256(index.tobytes()).hexdigest()[:16]
        path = self.path.with_name(f"{self.path.stem}-rows-{digest}.npy")
        array = _open(path, shape)
        if array is None:
            log.info("gathering %d cached images into %s", len(index), path)

            def gather(out: np.ndarray) -> None:
                for start in range(0, len(index), _GATHER_ROWS):
                    out[start : start + _GATHER_ROWS] = self.array[index[start : start + _GATHER_ROWS]]

            _write_npy(path, shape, gather)
            array = _open(path, shape)
        return torch.from_numpy(array)
