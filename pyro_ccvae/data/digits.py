"""The built-in ``digits`` data set: scikit-learn's bundled 8x8 handwritten digits.

``sklearn.datasets.load_digits`` ships 1,797 images with the library (values 0..16), so nothing
is downloaded or cached: the images are scaled to ``uint8`` 0..255 and upscaled bilinearly to
``image_size`` (default 32) once per load, which takes milliseconds. One channel.

Labels follow :mod:`.mnist` exactly, all observed: by default one 10-class label ``digit``
(scikit-learn's target); naming digits instead (``--labels 3,8``) gives one binary one-vs-rest
label per digit named (images of the other digits then have no label on), and
``--labels 0,1,2,3,4,5,6,7,8,9`` the ten binary labels of earlier versions. Splits are fixed
70/15/15, stratified by class and drawn from ``seed``; ``num_train`` keeps a seeded subset of
the training split.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .registry import register_dataset
from .base import DataError, DataOptions, DataSplits, ImageSet
from .common import check_options, class_labels, select_class_labels
from .mnist import MNIST_CLASSES, MNIST_LABEL

#: fractions of each class that go to train and valid; the rest is test.
SPLIT_FRACTIONS = (0.70, 0.15)
#: the largest pixel value in scikit-learn's digits.
SOURCE_MAX = 16


def upscale(pixels: np.ndarray, size: int) -> torch.Tensor:
    """``[N, h, w]`` values 0..``SOURCE_MAX`` -> ``uint8 [N, 1, size, size]`` (bilinear, rounded)."""
    images = torch.from_numpy(pixels.astype(np.float32) * (255.0 / SOURCE_MAX)).unsqueeze(1)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images.round().clamp(0, 255).to(torch.uint8)


def stratified_split(targets: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Sorted indices of train / valid / test: per class a seeded shuffle cut at :data:`SPLIT_FRACTIONS`."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        cut_train = int(round(SPLIT_FRACTIONS[0] * len(members)))
        cut_valid = cut_train + int(round(SPLIT_FRACTIONS[1] * len(members)))
        for name, chunk in zip(parts, np.split(members, [cut_train, cut_valid])):
            parts[name].append(chunk)
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}


@register_dataset("digits")
def load_digits(options: DataOptions) -> DataSplits:
    """scikit-learn's digits, grayscale, ``image_size`` square; one 10-class label ``digit`` (or
    one-vs-rest binary labels ``"0"``..``"9"``, see the module doc)."""
    from sklearn.datasets import load_digits as sklearn_digits

    size = check_options(options)
    if options.seed < 0:
        raise DataError(f"digits needs a non-negative seed, got {options.seed}")
    labels = select_class_labels(options.labels, MNIST_LABEL, MNIST_CLASSES, "digits")
    bundled = sklearn_digits()
    targets = bundled.target.astype(np.int64)
    images = upscale(bundled.images, size)
    rows = stratified_split(targets, options.seed)
    if options.num_train is not None:
        available = len(rows["train"])
        if not 1 <= options.num_train <= available:
            raise DataError(f"digits has {available} training images; pass --num-train between 1 and {available}")
        keep = np.random.default_rng(options.seed).permutation(available)[: options.num_train]
        rows["train"] = np.sort(rows["train"][keep])
    values, num_classes = class_labels(targets, MNIST_CLASSES, labels, MNIST_LABEL)
    splits = {}
    for name, index in rows.items():
        target = values[torch.from_numpy(index)]
        splits[name] = ImageSet(
            images=images[torch.from_numpy(index)],
            labels=target,
            mask=torch.ones_like(target, dtype=torch.bool),
            label_names=labels,
            ids=[f"digits/{i}" for i in index],
            num_classes=num_classes,
        )
    source = {"generator": "sklearn.datasets.load_digits", "seed": options.seed, "labels": list(labels)}
    if labels == (MNIST_LABEL,):
        source["classes"] = {MNIST_LABEL: list(MNIST_CLASSES)}
    return DataSplits(**splits, name="digits", source=source)
