"""pyro-ccvae: the Characteristic Capturing VAE (Joy et al., ICLR 2021) in Pyro.

The names below are imported when first used (:mod:`.lazy`): ``import pyro_ccvae`` alone, or
importing its configuration, does not import torch and Pyro.
"""
from .lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "CCVAE_ELBO": ".elbo",
    "CCVAEGuide": ".guides",
    "CCVAEModel": ".model",
    "FlowGuide": ".guides",
    "FullRankGuide": ".guides",
    "GUIDES": ".guides",
    "LowRankGuide": ".guides",
    "MeanFieldGuide": ".guides",
    "build_guide": ".guides",
    "check_guide": ".guides",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
