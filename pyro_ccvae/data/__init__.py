"""Data sets, found by name in :data:`DATASETS` (DESIGN.md §4)."""
from __future__ import annotations

from ..dataset_defaults import dataset_defaults
from .base import DataError, DataOptions, DataSplits, ImageSet, Loader, as_float_images

#: name -> loader; each loader module registers itself on import below.
DATASETS: dict[str, Loader] = {}


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


from . import shapes  # noqa: E402,F401  (registers "shapes")
from . import celeba, chexpert, digits, mnist  # noqa: E402,F401  (register "celeba", "chexpert", "digits", "mnist", "fashion-mnist")

__all__ = ["DATASETS", "as_float_images", "DataError", "DataOptions", "DataSplits", "ImageSet", "default_image_size", "load_dataset", "register_dataset"]
