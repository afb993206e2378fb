"""Small helpers shared by the loaders of real data sets (CheXpert, CelebA, MNIST)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from .base import DataError, DataOptions
from .images import MISSING

log = logging.getLogger("pyro_ccvae.data")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) turned into one space."""
    return " ".join(str(text).split())


def read_text(path: Path, fix: str) -> str:
    """A text file decoded as UTF-8 (a leading byte-order mark dropped); a byte that is not
    UTF-8 is a :class:`DataError` naming the file and line. ``fix`` says what to do then."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line} holds a byte that is not UTF-8 ({data[error.start]:#04x}); {fix}"
        ) from None


def data_dir(options: DataOptions, what: str) -> Path:
    """``options.data_dir`` as an existing directory, or a :class:`DataError` saying ``what`` is expected."""
    if options.data_dir is None:
        raise DataError(f"no data directory given: {what}")
    path = Path(options.data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"{path} is not a directory: {what}")
    return path


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def select_labels(
    requested: Optional[Iterable[str] | str], valid: Sequence[str], default: Sequence[str], dataset: str
) -> tuple[str, ...]:
    """The label names to use, in the order requested (default: ``default``).

    Names match case-insensitively, with ``_`` and `` `` interchangeable (``pleural_effusion``
    finds ``Pleural Effusion``). A string is split at commas.
    """
    if requested is None:
        requested = default
    elif isinstance(requested, str):
        requested = [part for part in requested.split(",")]
    by_key = {_key(name): name for name in valid}
    chosen: list[str] = []
    for name in requested:
        name = name.strip()
        if not name:
            continue
        canonical = name if name in valid else by_key.get(_key(name))
        if canonical is None:
            raise DataError(f"{dataset} has no label {name!r}; valid names: {', '.join(valid)}")
        if canonical in chosen:
            raise DataError(f"label {canonical!r} is asked for twice; pass each label once to --labels")
        chosen.append(canonical)
    if not chosen:
        raise DataError(f"no labels selected for {dataset}; pass --labels NAME,NAME from: {', '.join(valid)}")
    return tuple(chosen)


def check_options(options: DataOptions) -> int:
    """Check the options every loader reads before any slow work; return the image size."""
    fraction = options.valid_fraction
    if not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise DataError(f"the validation fraction must be in [0, 1), got {fraction!r}")
    size = options.image_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise DataError(f"image size must be a positive integer, got {size!r}; pass e.g. --image-size 64")
    return size


def class_labels(targets: np.ndarray, classes: Sequence[str], labels: Sequence[str]) -> torch.Tensor:
    """Class indices ``[N]`` (into ``classes``) -> ``float32 [N, len(labels)]``: one binary label per
    chosen class, on where the image is of that class (so at most one is on)."""
    columns = np.array([list(classes).index(label) for label in labels])
    return torch.from_numpy((np.asarray(targets)[:, None] == columns[None, :]).astype(np.float32))


def seeded_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """A sorted random ``fraction`` of ``range(n)`` (at least one and at most ``n - 1`` if ``fraction > 0``)."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"the validation fraction must be in [0, 1), got {fraction!r}")
    if fraction == 0.0 or n < 2:
        return np.zeros(0, dtype=np.int64)
    count = min(n - 1, max(1, int(round(fraction * n))))
    return np.sort(np.random.default_rng(seed).permutation(n)[:count]).astype(np.int64)


def report_bad_images(bad: dict[int, str], items: Sequence[str], options: DataOptions, cache_file: Path) -> None:
    """Raise a :class:`DataError` for unreadable images, or with ``skip_bad_images`` log how many are skipped."""
    if not bad:
        return
    indices = sorted(bad)
    if options.skip_bad_images:
        first = ", ".join(items[i] for i in indices[:3])
        log.warning("skipping %d unreadable or missing image(s) of %d (first: %s)", len(bad), len(items), first)
        return
    missing = [i for i in indices if bad[i] == MISSING]
    fix = f"fix them and delete {cache_file}, or pass --skip-bad-images to leave them out"
    if missing:
        first = ", ".join(items[i] for i in missing[:3])
        raise DataError(f"{len(missing)} of {len(items)} images are missing (first: {first}); {fix}")
    i = indices[0]
    raise DataError(
        f"corrupt image {items[i]} ({one_line(bad[i]).removeprefix('corrupt: ')})"
        + (f" and {len(indices) - 1} more" if len(indices) > 1 else "")
        + f"; {fix}"
    )


def check_missing(paths: Sequence[Path], items: Sequence[str], options: DataOptions, hint: str) -> dict[int, str]:
    """Before a long decode: fail fast on missing images (or return them as bad, with ``skip_bad_images``)."""
    from .images import missing_files

    missing = missing_files(paths)
    if missing and not options.skip_bad_images:
        first = ", ".join(str(paths[i]) for i in missing[:3])
        raise DataError(
            f"{len(missing)} of {len(paths)} images are missing (first: {first}); {hint}, "
            "or pass --skip-bad-images to leave them out"
        )
    return {i: MISSING for i in missing}
