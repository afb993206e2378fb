"""Small helpers shared by the loaders: choosing labels (binary, one-vs-rest and categorical, by
name), reading index files, splits, and reporting bad images."""
from __future__ import annotations

import logging
from dataclasses import dataclass
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


def leaves_folder(name: str) -> Optional[str]:
    """Why the image path ``name`` of an index file could lead outside the data set's folder
    (absolute, a ``..`` part, or a NUL character, which no file name holds), or ``None``.

    Index files are read as data: an entry must not make the loader read (and cache, and train
    on) a file elsewhere on the machine. Checked on the name itself, not on the resolved path,
    so that an image folder that is a link to another disk still works."""
    if "\0" in name:
        return "holds a NUL character"
    if name.startswith("/"):
        return "is absolute"
    if ".." in name.split("/"):
        return "holds a '..' part"
    return None


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


def match_label(name: str, valid: Sequence[str]) -> Optional[str]:
    """The name in ``valid`` that ``name`` means, or ``None``: names match case-insensitively,
    with ``_`` and `` `` interchangeable (``pleural_effusion`` finds ``Pleural Effusion``)."""
    name = name.strip()
    if name in valid:
        return name
    return {_key(v): v for v in valid}.get(_key(name))


def _split_requested(requested: Iterable[str] | str) -> list[str]:
    parts = requested.split(",") if isinstance(requested, str) else requested
    return [part.strip() for part in parts if part.strip()]


def select_labels(
    requested: Optional[Iterable[str] | str],
    valid: Sequence[str],
    default: Sequence[str],
    dataset: str,
    choices: Optional[str] = None,
) -> tuple[str, ...]:
    """The label names to use, in the order requested (default: ``default``).

    Names match as in :func:`match_label`. A string is split at commas. An unknown name is a
    :class:`DataError` ending with ``choices`` (default: the list of valid names).
    """
    chosen: list[str] = []
    for name in _split_requested(default if requested is None else requested):
        canonical = match_label(name, valid)
        if canonical is None:
            raise DataError(f"{dataset} has no label {name!r}; {choices or 'valid names: ' + ', '.join(valid)}")
        if canonical in chosen:
            raise DataError(f"label {canonical!r} is asked for twice; pass each label once to --labels")
        chosen.append(canonical)
    if not chosen:
        raise DataError(f"no labels selected for {dataset}; pass --labels NAME,NAME from: {', '.join(valid)}")
    return tuple(chosen)


# --- data sets whose images each show one of several classes (MNIST, Fashion-MNIST, digits) ----


def select_class_labels(
    requested: Optional[Iterable[str] | str], label: str, classes: Sequence[str], dataset: str
) -> tuple[str, ...]:
    """The labels of a data set whose every image shows one of ``classes``.

    By default (or when ``requested`` is ``label`` itself) the one categorical label ``label``,
    of ``len(classes)`` classes. Otherwise the classes named in ``requested``, each a binary
    one-vs-rest label (1 where the image shows that class).
    """
    choices = (
        f"pass --labels {label} (the default: one {len(classes)}-class label) or classes, each then a "
        f"one-vs-rest binary label (e.g. --labels {classes[3]},{classes[7]}), from: {', '.join(classes)}"
    )
    chosen = select_labels(requested, (label, *classes), (label,), dataset, choices=choices)
    if label in chosen and len(chosen) > 1:
        others = ",".join(name for name in chosen if name != label)
        raise DataError(
            f"--labels names both {label} and some of its classes ({others}); pass {label} alone "
            f"(one {len(classes)}-class label) or only classes (one-vs-rest binary labels)"
        )
    return chosen


def class_labels(
    targets: np.ndarray, classes: Sequence[str], labels: Sequence[str], label: str
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Class indices ``targets [N]`` (into ``classes``) -> labels ``float32 [N, len(labels)]`` and
    the classes of each label, for ``labels`` chosen by :func:`select_class_labels`.

    ``labels == (label,)``: the class index itself, one label of ``len(classes)`` classes.
    Otherwise one binary label per chosen class, 1 where the image is of that class (so at most
    one is on).
    """
    targets = np.asarray(targets)
    if tuple(labels) == (label,):
        return torch.from_numpy(targets.astype(np.float32)[:, None]), (len(classes),)
    columns = np.array([list(classes).index(name) for name in labels])
    onehot = (targets[:, None] == columns[None, :]).astype(np.float32)
    return torch.from_numpy(onehot), (2,) * len(labels)


# --- labels built from binary attribute columns (CelebA) ----------------------------------------


@dataclass(frozen=True)
class LabelSpec:
    """One label made of binary source columns (attributes).

    A binary label is one column (``columns == (name,)``). A categorical label is several
    mutually exclusive columns: class ``k`` is "column ``k`` is on".
    """

    name: str
    columns: tuple[str, ...]
    categorical: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.columns) if self.categorical else 2

    def describe(self) -> str:
        """How ``--labels`` writes this label."""
        return f"{self.name}={'|'.join(self.columns)}" if self.categorical else self.name


CATEGORY_EXAMPLE = "hair=Black_Hair|Blond_Hair|Brown_Hair"


def parse_label_specs(
    requested: Optional[Iterable[str] | str], valid: Sequence[str], default: Sequence[str], dataset: str
) -> tuple[LabelSpec, ...]:
    """``--labels`` for a data set of binary attributes, in the order requested (default: each of
    ``default`` a binary label).

    Each comma-separated item is an attribute name (a binary label; names match as in
    :func:`match_label`) or ``NAME=A|B|...``: a categorical label ``NAME`` whose class ``k`` is the
    ``k``-th attribute (at least two, each used in one label only). Every problem is a one-line
    :class:`DataError` saying how to write the item instead.
    """
    specs: list[LabelSpec] = []
    owner: dict[str, LabelSpec] = {}  # attribute -> the label using it
    for item in _split_requested(default if requested is None else requested):
        if "=" in item:
            spec = _parse_category(item, valid, dataset)
        else:
            column = match_label(item, valid)
            if column is None:
                raise DataError(
                    f"{dataset} has no label {item!r}; valid names: {', '.join(valid)} "
                    f"(or NAME=A|B|... for a categorical label, e.g. {CATEGORY_EXAMPLE})"
                )
            spec = LabelSpec(column, (column,))
        if any(spec.name == other.name for other in specs):
            raise DataError(f"label {spec.name!r} is asked for twice; pass each label once to --labels")
        for column in spec.columns:
            if column in owner:
                raise DataError(
                    f"attribute {column!r} is used twice in --labels (in {owner[column].describe()!r} and "
                    f"{spec.describe()!r}); use each attribute in one label only"
                )
            owner[column] = spec
        specs.append(spec)
    if not specs:
        raise DataError(f"no labels selected for {dataset}; pass --labels NAME,NAME from: {', '.join(valid)}")
    return tuple(specs)


def _parse_category(item: str, valid: Sequence[str], dataset: str) -> LabelSpec:
    name, _, body = (part.strip() for part in item.partition("="))
    parts = [part.strip() for part in body.split("|")]
    if not name:
        raise DataError(f"categorical label {item!r} has no name; write NAME=A|B|..., e.g. {CATEGORY_EXAMPLE}")
    if match_label(name, valid) is not None:
        raise DataError(
            f"categorical label {item!r} is named after the attribute {match_label(name, valid)!r}; "
            f"give it a name of its own, e.g. {CATEGORY_EXAMPLE}"
        )
    if not all(parts):
        raise DataError(
            f"categorical label {item!r} has an empty attribute name; separate its attributes by one '|', "
            f"e.g. {CATEGORY_EXAMPLE}"
        )
    if len(parts) < 2:
        raise DataError(
            f"categorical label {item!r} has one attribute; give it two or more ({name}={parts[0]}|OTHER|...), "
            f"or pass {parts[0]} alone as a binary label"
        )
    columns = []
    for part in parts:
        column = match_label(part, valid)
        if column is None:
            raise DataError(f"{dataset} has no attribute {part!r} (in --labels {item!r}); valid names: {', '.join(valid)}")
        if column in columns:
            raise DataError(f"attribute {column!r} is used twice in {item!r}; list each class once")
        columns.append(column)
    return LabelSpec(name, tuple(columns), categorical=True)


def labels_from_columns(
    values: np.ndarray, columns: Sequence[str], specs: Sequence[LabelSpec], dataset: str, counted: Optional[np.ndarray] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 attribute values ``[N, len(columns)]`` -> labels ``float32 [N, L]`` and mask ``bool [N, L]``.

    A binary label is its column, observed. A categorical label is the index of its one
    attribute that is on; a row with none or several of them on is unobserved for that label
    (mask ``False``, label 0), since the data do not say which class it is. One log line per
    categorical label gives those counts, among the rows ``counted`` (a bool ``[N]``; default all).
    """
    values = np.asarray(values)
    counted = np.ones(len(values), dtype=bool) if counted is None else np.asarray(counted, dtype=bool)
    labels = np.zeros((len(values), len(specs)), dtype=np.float32)
    mask = np.ones((len(values), len(specs)), dtype=bool)
    for i, spec in enumerate(specs):
        group = values[:, [list(columns).index(column) for column in spec.columns]] > 0
        if not spec.categorical:
            labels[:, i] = group[:, 0]
            continue
        on = group.sum(1)
        labels[:, i] = np.where(on == 1, group.argmax(1), 0)
        mask[:, i] = on == 1
        none, several = int((counted & (on == 0)).sum()), int((counted & (on > 1)).sum())
        log.info(
            "%s label %r: %d of %d images unobserved (%d with none of %s on, %d with several)",
            dataset, spec.name, none + several, int(counted.sum()), none, "|".join(spec.columns), several,
        )
    return torch.from_numpy(labels), torch.from_numpy(mask)


def check_options(options: DataOptions) -> int:
    """Check the options every loader reads before any slow work; return the image size."""
    fraction = options.valid_fraction
    if not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise DataError(f"the validation fraction must be in [0, 1), got {fraction!r}")
    size = options.image_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise DataError(f"image size must be a positive integer, got {size!r}; pass e.g. --image-size 64")
    return size


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
