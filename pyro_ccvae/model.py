"""Moved to :mod:`pyro_ccvae.models.ccvae.model`; this name stays for existing imports."""
from .models.ccvae.model import CCVAEModel, ConditionalPrior, fill_labels, merge_characteristic  # noqa: F401

__all__ = ["CCVAEModel", "ConditionalPrior", "fill_labels", "merge_characteristic"]
