"""MNIST and Fashion-MNIST from torchvision's raw layout; nothing is downloaded.

    <root>/MNIST/raw/            (Fashion-MNIST: <root>/FashionMNIST/raw/)
        train-images-idx3-ubyte  train-labels-idx1-ubyte
        t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte      (each may also be .gz)

Labels (all observed): by default **one 10-class label**, ``digit`` for MNIST (class ``k`` is
the digit ``k``) and ``article`` for Fashion-MNIST (Zalando's word for its products; class ``k``
is the ``k``-th of :data:`FASHION_CLASSES`), whose class index is the IDX label. Naming classes
instead gives **one-vs-rest binary labels**, one per class named, 1 where the image is of that
class: ``labels=("3", "7")`` (``--labels 3,7``) for MNIST, ``--labels trouser,ankle_boot`` for
Fashion-MNIST (class names match case-insensitively, ``_`` for a space), and
``--labels 0,1,2,3,4,5,6,7,8,9`` the ten binary labels of earlier versions. The categorical
label and its classes cannot be mixed.

The test split is t10k; the validation split is a seeded random ``valid_fraction`` of the
official training set.
"""
from __future__ import annotations

import gzip
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import images as _images
from .registry import register_dataset
from .base import DataError, DataOptions, DataSplits, ImageSet
from .cache import ImageCache, cache_dir, source_key
from .common import check_options, class_labels, data_dir, seeded_subset, select_class_labels

MNIST_CLASSES = tuple(str(digit) for digit in range(10))
#: the name of MNIST's (and digits') one categorical label, the default.
MNIST_LABEL = "digit"
#: torchvision's names for the Fashion-MNIST classes.
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: the name of Fashion-MNIST's one categorical label, the default.
FASHION_LABEL = "article"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _layout(folder: str, title: str) -> str:
    names = ", ".join(name for pair in FILES.values() for name in pair)
    return (
        f"expected <root>/{folder}/raw/ with {names} (each may end in .gz), as "
        f"torchvision.datasets.{folder}(root, download=True) leaves them; pass the root, "
        f"{folder}/ or raw/ as --data-dir (the {title} files are never downloaded here)"
    )


def find_raw(path: Path, folder: str, layout: str) -> Path:
    """The folder holding the IDX files: ``path``, ``path/raw`` or ``path/<folder>/raw``."""
    for candidate in (path, path / "raw", path / folder / "raw", path / folder):
        if any((candidate / (FILES["train"][0] + ext)).is_file() for ext in ("", ".gz")):
            return candidate
    raise DataError(f"no {folder} files in {path}: {layout}")


def idx_file(raw: Path, name: str, layout: str) -> Path:
    for candidate in (raw / name, raw / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{raw / name} (or .gz) is missing: {layout}")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (``.gz`` or not) as a ``uint8`` array with ``ndim`` dimensions."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path} ({' '.join(str(error).split())}); re-download it") from None
    if len(data) < 4 + 4 * ndim or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DataError(f"{path} is not an IDX file of {ndim}-d unsigned bytes (bad header); re-download it")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    expected = int(np.prod(dims))
    if body.size < expected:
        raise DataError(
            f"{path} holds {body.size} bytes for shape {dims}, which needs {expected}; the file is truncated, re-download it"
        )
    if body.size > expected:  # not a cut-off download: something was appended, or the header lies
        raise DataError(
            f"{path} has {body.size - expected} extra bytes after the {expected} its header's shape {dims} needs; "
            "the file is damaged, re-download it"
        )
    return body.reshape(dims)


def _load(options: DataOptions, name: str, folder: str, title: str, label: str, classes: tuple[str, ...]) -> DataSplits:
    size = check_options(options)
    labels = select_class_labels(options.labels, label, classes, title)
    layout = _layout(folder, title)
    raw = find_raw(data_dir(options, layout), folder, layout)
    paths = {split: tuple(idx_file(raw, file, layout) for file in pair) for split, pair in FILES.items()}
    targets = {}
    for split, (_, label_path) in paths.items():
        target = read_idx(label_path, 1)
        if target.size and target.max() >= len(classes):
            i = int(np.argmax(target >= len(classes)))
            raise DataError(f"{label_path} item {i} is class {target[i]}; {title} has classes 0-{len(classes) - 1}")
        targets[split] = target
    counts = {split: len(target) for split, target in targets.items()}
    items = [f"train/{i}" for i in range(counts["train"])] + [f"t10k/{i}" for i in range(counts["test"])]

    def build(out: np.ndarray) -> dict[int, str]:
        start = 0
        for split, (image_path, label_path) in paths.items():
            pixels = read_idx(image_path, 3)
            if len(pixels) != counts[split]:
                raise DataError(
                    f"{image_path} holds {len(pixels)} images but {label_path} {counts[split]} labels; re-download them"
                )
            bar = tqdm(
                pixels, desc=f"{title} {split}: resizing", unit="img", file=sys.stderr, mininterval=1.0, leave=False,
                disable=not _images.show_progress(),
            )  # fmt: skip
            for i, image in enumerate(bar):
                out[start + i] = _images.resize_array(image, size)
            start += len(pixels)
        return {}

    files = [p for pair in paths.values() for p in pair]
    key = source_key(name, files=files, items=items, pixels={"size": size, "channels": 1})
    cache = ImageCache.load_or_build(cache_dir(options, raw), f"{name}-{size}", key, (len(items), 1, size, size), build)

    encoded = {split: class_labels(target, classes, labels, label) for split, target in targets.items()}
    num_classes = encoded["train"][1]
    valid = seeded_subset(counts["train"], options.valid_fraction, options.seed)
    train = np.setdiff1d(np.arange(counts["train"]), valid)
    rows = {"train": (train, "train"), "valid": (valid, "train"), "test": (np.arange(counts["test"]), "test")}
    splits = {}
    for split, (index, origin) in rows.items():
        offset = 0 if origin == "train" else counts["train"]
        target = encoded[origin][0][torch.from_numpy(index)]
        splits[split] = ImageSet(
            images=cache.rows(offset + index),
            labels=target,
            mask=torch.ones_like(target, dtype=torch.bool),
            label_names=labels,
            ids=[items[offset + i] for i in index],
            num_classes=num_classes,
        )
    source = {"root": str(raw), "cache": str(cache.path), "labels": list(labels)}
    if labels == (label,):
        source["classes"] = {label: list(classes)}
    return DataSplits(**splits, name=name, source=source)


@register_dataset("mnist")
def load_mnist(options: DataOptions) -> DataSplits:
    """MNIST digits, grayscale, ``image_size`` square; one 10-class label ``digit`` (or one-vs-rest
    binary labels ``"0"``..``"9"``, see the module doc)."""
    return _load(options, "mnist", "MNIST", "MNIST", MNIST_LABEL, MNIST_CLASSES)


@register_dataset("fashion-mnist")
def load_fashion_mnist(options: DataOptions) -> DataSplits:
    """Fashion-MNIST, grayscale, ``image_size`` square; one 10-class label ``article`` (or one-vs-rest
    binary labels named after :data:`FASHION_CLASSES`, see the module doc)."""
    return _load(options, "fashion-mnist", "FashionMNIST", "Fashion-MNIST", FASHION_LABEL, FASHION_CLASSES)
