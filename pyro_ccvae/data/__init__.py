"""Data sets, found by name in :data:`DATASETS` (:mod:`.registry`); the data contract is :mod:`.base`.

The names below are imported when first used (:mod:`pyro_ccvae.lazy`): the light
:mod:`.label_spec` is read without importing torch or any loader.
"""
from ..lazy import lazy_exports

_EXPORTS = {
    **{name: ".base" for name in ("DataError", "DataOptions", "DataSplits", "ImageSet", "Loader", "as_float_images")},
    **{name: ".registry" for name in ("DATASETS", "default_image_size", "load_dataset", "register_dataset")},
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["DATASETS", "as_float_images", "DataError", "DataOptions", "DataSplits", "ImageSet", "default_image_size", "load_dataset", "register_dataset"]
