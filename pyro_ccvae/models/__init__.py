"""Model families, found by name in :data:`MODELS` (``--model NAME``); see :mod:`.base`.

Each family is a folder (``models/ccvae/``: its config, model, objective, sites, guides and
representation) that registers itself here; the shared networks (:mod:`pyro_ccvae.nets`) and
likelihoods (:mod:`pyro_ccvae.likelihoods`) are injected into its modules.

=========  =====================================================================================
``ccvae``  the CCVAE (Joy et al., 2021), the default
``m2``     M2 (Kingma et al., 2014): labels beside ``z`` in the latent space
``diva``   the modified DIVA of the CCVAE paper's appendix C.4 (after Ilse et al., 2019)
``mvae``   the MVAE (Wu & Goodman, 2018): a product of experts over image and labels
=========  =====================================================================================

The baselines share :mod:`.labels` (categorical label helpers) and :mod:`.common` (what a
family with its own guide needs).
"""
from __future__ import annotations

from .base import CAPABILITIES, CapabilityError, ModelFamily, Representation

#: name -> family; each family's folder registers itself on import below.
MODELS: dict[str, ModelFamily] = {}


def register_model(family: ModelFamily) -> ModelFamily:
    """Make ``family`` available as ``--model family.name``."""
    MODELS[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    """The family called ``name``; a one-line :class:`ValueError` naming the known ones if there is none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


from . import ccvae  # noqa: E402,F401  (registers "ccvae", the default: first in --model and --help)
from . import m2, diva, mvae  # noqa: E402,F401  (the baselines)

__all__ = ["CAPABILITIES", "MODELS", "CapabilityError", "ModelFamily", "Representation", "get_family", "register_model"]
