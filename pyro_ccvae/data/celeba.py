"""CelebA (Liu et al., ICCV 2015) from its official layout, as torchvision also lays it out.

    celeba/
        list_attr_celeba.txt       202599 / the 40 attribute names / 000001.jpg -1  1 ...
        list_eval_partition.txt    000001.jpg 0   (0 train, 1 valid, 2 test)
        img_align_celeba/000001.jpg ...   (178x218 RGB)

The official partition gives the splits. Images are resized to ``image_size`` square as in the
paper (aspect ratio not kept), or with ``center_crop`` first cropped to their central 148x148.

Labels (``options.labels``, ``--labels``; default the paper's 18 attributes) are comma-separated
items, each either

* an attribute name: a **binary** label, ``-1``/``1`` in the file and 0/1 here, always observed
  (names match case-insensitively, ``_`` and space alike); or
* ``NAME=A|B|...``: a **categorical** label ``NAME`` of mutually exclusive attributes, at least
  two, class ``k`` being "the ``k``-th attribute is on". An image with none or several of them
  on is unobserved for that label (its mask is ``False``); how many is logged, one line per
  categorical label. For example
  ``--labels "hair=Bald|Black_Hair|Blond_Hair|Brown_Hair|Gray_Hair,Smiling,Male"``.

Each attribute may be used in one label only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .registry import register_dataset
from .base import DataError, DataOptions, DataSplits, ImageSet
from .cache import ImageCache, cache_dir, source_key
from .common import (
    LabelSpec,
    check_missing,
    check_options,
    data_dir,
    labels_from_columns,
    leaves_folder,
    parse_label_specs,
    read_text,
    report_bad_images,
)
from .images import decode_into

#: the 18 attributes the CCVAE paper uses (Joy et al. 2021).
PAPER_LABELS = (
    "Arched_Eyebrows",
    "Bags_Under_Eyes",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Eyeglasses",
    "Heavy_Makeup",
    "Male",
    "No_Beard",
    "Pale_Skin",
    "Receding_Hairline",
    "Smiling",
    "Wavy_Hair",
    "Wearing_Necktie",
    "Young",
)
ATTR_FILE, PARTITION_FILE, IMAGE_DIR = "list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba"
#: the side of the central square kept with ``center_crop`` (the usual crop for 178x218 CelebA).
CROP = 148
SPLITS = {"0": "train", "1": "valid", "2": "test"}

LAYOUT = (
    f"expected a CelebA folder with {ATTR_FILE}, {PARTITION_FILE} and {IMAGE_DIR}/ (or its parent, "
    "as torchvision's <root>/celeba/); download the aligned-and-cropped images and the annotations "
    "from the CelebA page (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), then pass --data-dir"
)


def find_root(path: Path) -> Path:
    """The CelebA folder: ``path`` itself if it holds the attribute file, else ``path/celeba``."""
    for candidate in (path, path / "celeba", path / "CelebA"):
        if (candidate / ATTR_FILE).is_file():
            return candidate
    if (path / IMAGE_DIR).is_dir() or (path / PARTITION_FILE).is_file():
        raise DataError(f"{path / ATTR_FILE} is missing: {LAYOUT}")
    raise DataError(f"no CelebA data in {path}: {LAYOUT}")


def image_dir(root: Path) -> Path:
    """``img_align_celeba/``, or the ``img_align_celeba/img_align_celeba/`` some mirrors unpack to."""
    folder = root / IMAGE_DIR
    if not folder.is_dir():
        raise DataError(f"{folder} is missing: {LAYOUT}")
    nested = folder / IMAGE_DIR
    if nested.is_dir() and not any(folder.glob("*.jpg")):
        return nested
    return folder


def read_attributes(
    path: Path, labels: tuple[str, ...] | None
) -> tuple[list[str], tuple[LabelSpec, ...], tuple[str, ...], np.ndarray]:
    """``list_attr_celeba.txt`` -> (image names, the labels asked for (see the module doc), the
    attributes they read, those attributes' 0/1 values ``uint8 [N, A]``)."""
    lines = read_text(path, f"re-download {ATTR_FILE}").splitlines()
    try:
        count = int(lines[0].strip())
    except (IndexError, ValueError):
        raise DataError(f"{path} line 1 should be the number of images; re-download {ATTR_FILE}") from None
    names = tuple(lines[1].split()) if len(lines) > 1 else ()
    if not names:
        raise DataError(f"{path} line 2 should list the attribute names; re-download {ATTR_FILE}")
    specs = parse_label_specs(labels, names, PAPER_LABELS, "CelebA")
    chosen = tuple(column for spec in specs for column in spec.columns)
    columns = [1 + names.index(name) for name in chosen]
    files, values = [], []
    for line_number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(
                f"{path} line {line_number} has {len(parts) - 1} values for {len(names)} attributes; "
                f"re-download {ATTR_FILE}"
            )
        escape = leaves_folder(parts[0])
        if escape is not None:
            raise DataError(
                f"{path} line {line_number}: the image name {parts[0]!r} {escape}, which could read a file outside "
                f"the data directory; CelebA names each image by its file name in {IMAGE_DIR}/ (e.g. 000001.jpg), "
                f"re-download {ATTR_FILE}"
            )
        row = [parts[c] for c in columns]
        for name, value in zip(chosen, row):
            if value not in ("1", "-1"):
                raise DataError(f"{path} line {line_number}: {name} is {value!r}; CelebA attributes are 1 or -1")
        files.append(parts[0])
        values.append(row)
    if len(files) != count:
        raise DataError(f"{path} says {count} images but lists {len(files)}; the file is truncated, re-download it")
    array = (np.array(values, dtype=np.int8).reshape(len(files), len(chosen)) > 0).astype(np.uint8)
    return files, specs, chosen, array


def read_partition(path: Path, files: list[str]) -> np.ndarray:
    """``list_eval_partition.txt`` -> the split (0 train, 1 valid, 2 test) of each of ``files``."""
    if not path.is_file():
        raise DataError(f"{path} is missing: {LAYOUT}")
    split: dict[str, int] = {}
    for line_number, line in enumerate(read_text(path, f"re-download {PARTITION_FILE}").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in SPLITS:
            raise DataError(f"{path} line {line_number} is {line.strip()!r}; expected '<image> 0|1|2'")
        split[parts[0]] = int(parts[1])
    unknown = [name for name in files if name not in split]
    if unknown:
        raise DataError(
            f"{path} has no split for {len(unknown)} images of {ATTR_FILE} (first: {', '.join(unknown[:3])}); "
            "re-download the annotations"
        )
    return np.array([split[name] for name in files], dtype=np.int8)


@register_dataset("celeba")
def load(options: DataOptions) -> DataSplits:
    """CelebA's aligned faces, RGB, ``image_size`` square, the paper's 18 attributes by default
    (binary and categorical labels: see the module doc)."""
    size = check_options(options)
    root = find_root(data_dir(options, LAYOUT))
    attr_path, partition_path = root / ATTR_FILE, root / PARTITION_FILE
    items, specs, columns, values = read_attributes(attr_path, options.labels)
    labels = tuple(spec.name for spec in specs)
    partition = read_partition(partition_path, items)
    folder = image_dir(root)
    files = [folder / name for name in items]
    crop = CROP if options.center_crop else None

    def build(out: np.ndarray) -> dict[int, str]:
        bad = check_missing(files, items, options, f"expected them in {folder}")
        bad.update(decode_into(files, out, channels=3, crop=crop, skip=bad, desc="CelebA: decoding images"))
        return bad

    key = source_key(
        "celeba", files=[attr_path, partition_path], items=items, pixels={"size": size, "channels": 3, "crop": crop}
    )
    shape = (len(items), 3, size, size)
    cache = ImageCache.load_or_build(cache_dir(options, root), f"celeba-{size}", key, shape, build)
    report_bad_images(cache.bad, items, options, cache.path)

    good = np.ones(len(items), dtype=bool)
    good[list(cache.bad)] = False
    value, observed = labels_from_columns(values, columns, specs, "CelebA", counted=good)
    num_classes = tuple(spec.num_classes for spec in specs)
    splits = {}
    for code, split in SPLITS.items():
        index = np.flatnonzero(good & (partition == int(code)))
        rows = torch.from_numpy(index)
        splits[split] = ImageSet(
            images=cache.rows(index),
            labels=value[rows],
            mask=observed[rows],
            label_names=labels,
            ids=[items[i] for i in index],
            num_classes=num_classes,
        )
    return DataSplits(
        **splits,
        name="celeba",
        source={
            "root": str(root),
            "cache": str(cache.path),
            "labels": [spec.describe() for spec in specs],
            "classes": {spec.name: list(spec.columns) for spec in specs if spec.categorical},
            "center_crop": bool(crop),
            "skipped_images": len(cache.bad),
        },
    )
