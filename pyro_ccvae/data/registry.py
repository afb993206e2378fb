"""The registry of data sets: :data:`DATASETS` finds a loader by name (``--dataset NAME``).

A built-in data set's module is imported when the name is first looked up, and registers its
loader with :func:`register_dataset`: loading one data set does not import the others' loaders.
"""
from __future__ import annotations

from ..dataset_defaults import dataset_defaults
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


def default_image_size(name: str) -> int:
    """The image size used when none is asked for (:mod:`pyro_ccvae.dataset_defaults`)."""
    return dataset_defaults(name).image_size


def load_dataset(name: str, options: DataOptions) -> DataSplits:
    """Load the data set called ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](options)
