"""Model families, found by name in :data:`MODELS` (``--model NAME``; :mod:`.registry`); see :mod:`.base`.

Each family is a folder (``models/ccvae/``: its config, family, model, objective, sites, guides
and representation) that registers itself in :mod:`.registry`; the shared networks
(:mod:`pyro_ccvae.nets`) and likelihoods (:mod:`pyro_ccvae.likelihoods`) are injected into its
modules. The baselines share :mod:`.labels` (categorical label helpers) and :mod:`.common`.

=========  =====================================================================================
``ccvae``  the CCVAE (Joy et al., 2021), the default
``m2``     M2 (Kingma et al., 2014): labels beside ``z`` in the latent space
``diva``   the modified DIVA of the CCVAE paper's appendix C.4 (after Ilse et al., 2019)
``mvae``   the MVAE (Wu & Goodman, 2018): a product of experts over image and labels
=========  =====================================================================================
"""
from ..lazy import lazy_exports
from .registry import BUILT_IN, MODELS, Families, config_class, get_family, register_model

__getattr__, __dir__ = lazy_exports(
    __name__, {name: ".base" for name in ("CAPABILITIES", "CapabilityError", "ModelFamily", "Representation")}
)
__all__ = [
    "BUILT_IN", "CAPABILITIES", "MODELS", "CapabilityError", "Families", "ModelFamily", "Representation", "config_class",
    "get_family", "register_model",
]  # fmt: skip
