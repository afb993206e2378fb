"""pyro-ccvae: the Characteristic Capturing VAE (Joy et al., ICLR 2021) in Pyro.

The names below are imported when first used (:mod:`.lazy`): ``import pyro_ccvae`` alone, or
importing its configuration, does not import torch and Pyro.
"""
from .lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "CCVAE_ELBO": ".models.ccvae.elbo",
    "CCVAEGuide": ".models.ccvae.guides.base",
    "CCVAEModel": ".models.ccvae.model",
    "FlowGuide": ".models.ccvae.guides.flow",
    "FullRankGuide": ".models.ccvae.guides.fullrank",
    "GUIDES": ".models.ccvae.guides.registry",
    "LowRankGuide": ".models.ccvae.guides.lowrank",
    "MeanFieldGuide": ".models.ccvae.guides.meanfield",
    "build_guide": ".models.ccvae.guides.registry",
    "check_guide": ".models.ccvae.guides.check",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
