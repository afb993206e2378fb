"""CheXpert (Irvin et al., AAAI 2019) from its official layout, small or full.

    CheXpert-v1.0-small/          (or CheXpert-v1.0/, the full-resolution release)
        train.csv  valid.csv
        train/patient00001/study1/view1_frontal.jpg ...
        valid/patient64541/study1/view1_frontal.jpg ...

Labels come from the CSVs: ``1.0`` positive, ``0.0`` negative, blank (not mentioned: negative,
or unobserved with ``blank="ignore"``) and ``-1.0`` uncertain, handled per label by
``options.uncertain``. The default, ``ignore``, leaves an uncertain label unobserved for that
image only (its mask is ``False``); the CCVAE's ELBO handles it like any unlabelled one.

Splits: the official ``valid.csv`` (radiologist-labelled) is the test split; the validation split
is a seeded random ``valid_fraction`` of the patients of ``train.csv``, so that no patient is in
two splits.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
import numpy as np
import torch

from .registry import register_dataset
from .base import DataError, DataOptions, DataSplits, ImageSet
from .cache import ImageCache, cache_dir, source_key
from .common import (
    check_missing, check_options, data_dir, leaves_folder, log, read_text, report_bad_images, seeded_subset, select_labels,
)  # fmt: skip
from .images import decode_into

#: the 14 observations of the CSVs, in column order.
CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
#: the five the CCVAE paper (and the CheXpert competition) uses.
PAPER_LABELS = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
HEADER = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA") + CHEXPERT_LABELS
FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")
POLICIES = ("ignore", "zeros", "ones")
VIEWS = ("frontal", "lateral", "all")

LAYOUT = (
    "expected CheXpert-v1.0-small/ (or CheXpert-v1.0/) with train.csv, valid.csv, train/ and valid/, "
    "or the folder that contains it; download it from the Stanford ML Group CheXpert page "
    "(https://stanfordmlgroup.github.io/competitions/chexpert/) after registering, then pass --data-dir"
)

# CSV cell -> code. Blank is its own code; policies turn codes into (label, mask).
_POSITIVE, _NEGATIVE, _UNCERTAIN, _BLANK = 1, 0, -1, 2
_VALUES = {
    "1.0": _POSITIVE, "1": _POSITIVE, "0.0": _NEGATIVE, "0": _NEGATIVE, "-1.0": _UNCERTAIN, "-1": _UNCERTAIN, "": _BLANK
}  # fmt: skip
_PATIENT = re.compile(r"patient\d+")


def find_root(path: Path) -> Path:
    """The CheXpert folder: ``path`` itself if it holds ``train.csv``, else its CheXpert sub-folder."""
    if (path / "train.csv").is_file() or (path / "valid.csv").is_file():
        return path
    found = [path / name for name in FOLDERS if (path / name).is_dir()]
    if len(found) > 1:
        raise DataError(f"{path} holds both {found[0].name}/ and {found[1].name}/; pass the one you want as --data-dir")
    if not found:
        raise DataError(f"no CheXpert data in {path}: {LAYOUT}")
    return found[0]


def parse_uncertain(spec: str, labels: tuple[str, ...]) -> dict[str, str]:
    """``options.uncertain`` as ``{label: policy}``: ``ignore|zeros|ones`` for every label, or
    per label, e.g. ``Edema=ones,Atelectasis=ones,*=zeros`` (``*``: every other label; labels
    not listed, without ``*``, get ``ignore``)."""
    usage = "use ignore, zeros, ones, or per label NAME=POLICY,...,*=POLICY (e.g. Edema=ones,*=zeros)"
    spec = (spec or "").strip()
    if spec in POLICIES:
        return {label: spec for label in labels}
    if not spec.strip(", "):
        raise DataError(f"empty --uncertain policy; {usage}")
    default, chosen = "ignore", {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, policy = part.partition("=")
        name, policy = name.strip(), policy.strip()
        if not sep or policy not in POLICIES:
            raise DataError(f"bad uncertain-label policy {part!r} in --uncertain {spec!r}; {usage}")
        if name == "*":
            default = policy
        else:
            chosen[select_labels([name], CHEXPERT_LABELS, (), "CheXpert")[0]] = policy
    return {label: chosen.get(label, default) for label in labels}


class _Table:
    """The rows of one CSV that we keep (image paths, patients, label codes, line numbers) and every
    patient listed."""

    def __init__(self, paths: list[str], patients: list[str], codes: np.ndarray, all_patients: set[str], lines: list[int]):
        self.paths, self.patients, self.codes, self.all_patients, self.lines = paths, patients, codes, all_patients, lines

    def keep(self, rows: list[int]) -> "_Table":
        """The table of the rows ``rows`` (indices into the kept rows)."""
        return _Table(
            [self.paths[i] for i in rows], [self.patients[i] for i in rows], self.codes[rows],
            self.all_patients, [self.lines[i] for i in rows],
        )  # fmt: skip


def read_csv(path: Path, labels: tuple[str, ...], views: str) -> _Table:
    """Read one of CheXpert's CSVs, keeping the rows of the chosen ``views``."""
    if not path.is_file():
        raise DataError(f"{path} is missing: {LAYOUT}")
    with io.StringIO(read_text(path, "re-download the data set or re-save the CSV as UTF-8"), newline="") as f:
        reader = csv.reader(f)
        header = [cell.strip() for cell in next(reader, [])]
        for column in ("Path", "Frontal/Lateral") + labels:
            if column not in header:
                raise DataError(
                    f"{path} has no column {column!r}; expected the official header "
                    f"{','.join(HEADER)}; re-download the data set"
                )
        ipath, iview = header.index("Path"), header.index("Frontal/Lateral")
        ilabels = [header.index(label) for label in labels]
        width = len(header)
        paths, patients, codes, all_patients, lines = [], [], [], set(), []
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            if len(row) != width:
                raise DataError(
                    f"{path} line {line} has {len(row)} fields, the header {width}; re-download the data set"
                )
            image = row[ipath].strip()
            escape = leaves_folder(image)
            if escape is not None:
                raise DataError(
                    f"{path} line {line}: the path {image!r} {escape}, which could read a file outside the data "
                    f"directory; CheXpert paths start with the folder's name ({root_name(path)}/train/patient.../...), "
                    "re-download the data set"
                )
            patient = next((part for part in image.split("/") if _PATIENT.fullmatch(part)), None)
            if patient is None:
                raise DataError(f"{path} line {line}: no patientNNNNN folder in the path {image!r}")
            all_patients.add(patient)
            view = row[iview].strip().lower()
            if view not in ("frontal", "lateral"):
                raise DataError(f"{path} line {line}: Frontal/Lateral is {row[iview]!r}, expected Frontal or Lateral")
            coded = []
            for label, i in zip(labels, ilabels):
                code = _VALUES.get(row[i].strip())
                if code is None:
                    raise DataError(
                        f"{path} line {line}: {label} is {row[i]!r}; CheXpert labels are 1.0, 0.0, -1.0 or blank"
                    )
                coded.append(code)
            if views != "all" and view != views:
                continue
            paths.append(image)
            patients.append(patient)
            codes.append(coded)
            lines.append(line)
    return _Table(paths, patients, np.array(codes, dtype=np.int8).reshape(len(paths), len(labels)), all_patients, lines)


def root_name(csv_file: Path) -> str:
    """The name of the CheXpert folder that holds ``csv_file``."""
    return csv_file.parent.name


def drop_repeats(table: _Table, root: Path, csv_file: Path) -> _Table:
    """``table`` with each image once: a row whose image an earlier row lists (a row copied within
    the CSV) is dropped, with a warning that counts them, so that no image weighs twice."""
    first_row: dict[Path, int] = {}
    kept, repeats, relabelled = [], [], 0
    for row, item in enumerate(table.paths):
        earlier = first_row.setdefault(image_file(root, item), row)
        if earlier == row:
            kept.append(row)
        else:
            repeats.append((row, earlier))
            relabelled += bool((table.codes[row] != table.codes[earlier]).any())
    if repeats:
        row, earlier = repeats[0]
        other_labels = f", {relabelled} of them with other labels than the first" if relabelled else ""
        log.warning(
            "%s lists %d image(s) a second time (first: line %d repeats line %d%s); each image is used once, "
            "with the labels of its first row",
            csv_file, len(repeats), table.lines[row], table.lines[earlier], other_labels,
        )  # fmt: skip
    return table.keep(kept)


def drop_test_patients(train: _Table, test: _Table, root: Path, csvs: tuple[Path, Path]) -> _Table:
    """``train`` without the rows of patients that ``valid.csv`` (the test split) lists, with a
    warning that counts them and how many are test images themselves (rows copied from
    ``valid.csv``): the test split stays the official one and no test patient is trained on."""
    test_images = {image_file(root, item) for item in test.paths}
    leaked = [row for row, patient in enumerate(train.patients) if patient in test.all_patients]
    copied = sum(image_file(root, train.paths[row]) in test_images for row in leaked)
    shared_patients = {patient for patient in train.all_patients if patient in test.all_patients}
    if leaked or shared_patients:
        first = f" (first: line {train.lines[leaked[0]]})" if leaked else ""
        log.warning(
            "%s lists %d image(s) of %d patient(s) of the test split %s, %d of them %s's own images%s; "
            "they are left out of training and validation, so that no test patient is trained on",
            csvs[0], len(leaked), len(shared_patients), csvs[1].name, copied, csvs[1].name, first,
        )  # fmt: skip
    kept = [row for row in range(len(train.paths)) if train.patients[row] not in test.all_patients]
    table = train.keep(kept)
    table.all_patients = train.all_patients - test.all_patients
    return table


def image_file(root: Path, csv_path: str) -> Path:
    """The file of a CSV ``Path`` (``CheXpert-v1.0-small/train/...``), whatever the root folder is called."""
    parts = csv_path.split("/")
    if parts and parts[0] not in ("train", "valid"):
        parts = parts[1:]
    return root.joinpath(*parts)


def encode(codes: np.ndarray, labels: tuple[str, ...], uncertain: dict[str, str], blank: str):
    """Label codes ``[N, L]`` -> (labels float ``[N, L]``, mask bool ``[N, L]``) under the policies."""
    ones = np.array([uncertain[label] == "ones" for label in labels])
    kept = np.array([uncertain[label] != "ignore" for label in labels])
    is_uncertain = codes == _UNCERTAIN
    value = (codes == _POSITIVE) | (is_uncertain & ones)
    mask = (codes == _POSITIVE) | (codes == _NEGATIVE) | (is_uncertain & kept)
    if blank == "zeros":
        mask |= codes == _BLANK
    return torch.from_numpy(value.astype(np.float32)), torch.from_numpy(mask)


@register_dataset("chexpert")
def load(options: DataOptions) -> DataSplits:
    """CheXpert's frontal (by default) grayscale chest X-rays, ``image_size`` square, 5 labels by default."""
    size = check_options(options)
    root = find_root(data_dir(options, LAYOUT))
    labels = select_labels(options.labels, CHEXPERT_LABELS, PAPER_LABELS, "CheXpert")
    uncertain = parse_uncertain(options.uncertain, labels)
    if options.blank not in ("zeros", "ignore"):
        raise DataError(f"bad blank-label policy {options.blank!r}; use --blank zeros or --blank ignore")
    views = (options.views or "").lower()
    if views not in VIEWS:
        raise DataError(f"bad views {options.views!r}; use --views frontal, lateral or all")

    csvs = (root / "train.csv", root / "valid.csv")
    train, test = (drop_repeats(read_csv(path, labels, views), root, path) for path in csvs)
    train = drop_test_patients(train, test, root, csvs)
    if not train.paths:
        raise DataError(f"{csvs[0]} lists no {views} images; check --views")
    items = train.paths + test.paths
    files = [image_file(root, item) for item in items]

    def build(out: np.ndarray) -> dict[int, str]:
        bad = check_missing(files, items, options, f"expected them under {root}")
        bad.update(decode_into(files, out, channels=1, skip=bad, desc="CheXpert: decoding images"))
        return bad

    directory = cache_dir(options, root)
    key = source_key("chexpert", files=csvs, items=items, pixels={"size": size, "channels": 1, "views": views})
    cache = ImageCache.load_or_build(directory, f"chexpert-{size}", key, (len(items), 1, size, size), build)
    report_bad_images(cache.bad, items, options, cache.path)

    # Validation patients: a seeded choice among every patient of train.csv, whatever the views,
    # so that runs on different views share one patient split.
    patients = sorted(train.all_patients)
    valid_patients = {patients[i] for i in seeded_subset(len(patients), options.valid_fraction, options.seed)}
    n_train = len(train.paths)
    good = np.ones(len(items), dtype=bool)
    good[list(cache.bad)] = False
    in_valid = np.array([p in valid_patients for p in train.patients], dtype=bool)
    rows = {
        "train": np.flatnonzero(good[:n_train] & ~in_valid),
        "valid": np.flatnonzero(good[:n_train] & in_valid),
        "test": n_train + np.flatnonzero(good[n_train:]),
    }
    value, mask = encode(np.concatenate([train.codes, test.codes]), labels, uncertain, options.blank)
    splits = {
        split: ImageSet(
            images=cache.rows(index),
            labels=value[torch.from_numpy(index)],
            mask=mask[torch.from_numpy(index)],
            label_names=labels,
            ids=[items[i] for i in index],
        )
        for split, index in rows.items()
    }
    return DataSplits(
        **splits,
        name="chexpert",
        source={
            "root": str(root),
            "cache": str(cache.path),
            "views": views,
            "labels": list(labels),
            "uncertain": uncertain,
            "blank": options.blank,
            "patients": {"train": len(patients) - len(valid_patients), "valid": len(valid_patients)},
            "skipped_images": len(cache.bad),
        },
    )
