"""The registry of data sets: :data:`DATASETS` finds a loader by name (``--dataset NAME``).

A built-in data set's module is imported when the name is first looked up, and registers its
loader with :func:`register_dataset`: loading one data set does not import the others' loaders.
"""
from __future__ import annotations

from ..lazy import LazyRegistry
from .base import DataError, DataOptions, DataSplits, Loader

#: the built-in data sets: name -> the module that registers its loader.
BUILT_IN = {
    "shapes": ".shapes",
    "celeba": ".celeba",
    "chexpert": ".chexpert",
    "mnist": ".mnist",
    "fashion-mnist": ".mnist",
    "digits": ".digits",
}

#: name -> loader; the built-in ones are imported when first looked up.
DATASETS = LazyRegistry(__package__, BUILT_IN)


def register_dataset(name: str):
    """Decorator: make ``load(options) -> DataSplits`` available as ``--dataset name``."""

    def wrap(load: Loader) -> Loader:
        DATASETS[name] = load
        return load

    return wrap


#: the image size of a data set when none is asked for: 32 for the small built-in sets and the
#: MNISTs (their own 28 px or 8 px fit in it), the paper's 64 for the photographs (appendix C).
IMAGE_SIZES = {"shapes": 32, "digits": 32, "mnist": 32, "fashion-mnist": 32}


def default_image_size(name: str) -> int:
    """The image size used when none is asked for (:data:`IMAGE_SIZES`; 64, the paper's, otherwise)."""
    return IMAGE_SIZES.get(name, 64)


def load_dataset(name: str, options: DataOptions) -> DataSplits:
    """Load the data set called ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](options)
