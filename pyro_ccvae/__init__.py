"""pyro-ccvae: the Characteristic Capturing VAE (Joy et al., ICLR 2021) in Pyro."""
from .elbo import CCVAE_ELBO
from .guides import GUIDES, CCVAEGuide, FlowGuide, FullRankGuide, LowRankGuide, MeanFieldGuide, build_guide, check_guide
from .model import CCVAEModel

__version__ = "0.1.0"
__all__ = [
    "CCVAE_ELBO",
    "CCVAEGuide",
    "CCVAEModel",
    "FlowGuide",
    "FullRankGuide",
    "GUIDES",
    "LowRankGuide",
    "MeanFieldGuide",
    "build_guide",
    "check_guide",
]
