"""The CCVAE family (Joy et al., ICLR 2021): ``--model ccvae``, the default.

=====================  ==================================================================
:mod:`.config`         :class:`CCVAEConfig`, the ``model`` section of a run's config
:mod:`.family`         :class:`CCVAEFamily`: what training and analysis ask of the family (imports torch)
:mod:`.model`          the generative model ``p(x, y, z)`` (:class:`CCVAEModel`)
:mod:`.elbo`           the objective, a Pyro ELBO (:class:`CCVAE_ELBO`)
:mod:`.sites`          site and plate names: the contract between model, guide and ELBO
:mod:`.guides`         the swappable guides ``q(z | x) q(y | z_c)``
:mod:`.representation` what analysis asks of a trained CCVAE (:class:`CCVAERepresentation`)
=====================  ==================================================================

The decoder (:class:`pyro_ccvae.nets.ConvDecoder`) and the likelihood
(:mod:`pyro_ccvae.likelihoods`) are built in :mod:`.family` and injected into the model; the guides build
their encoder (:class:`pyro_ccvae.nets.ConvEncoder`) from the same dimensions.
"""
# Only the config is light: the names below are imported when first used (:mod:`pyro_ccvae.lazy`).
from __future__ import annotations

from ...lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CCVAEConfig": ".config",
        "CCVAEFamily": ".family",
        "CCVAEModel": ".model",
        "CCVAERepresentation": ".representation",
        "CCVAE_ELBO": ".elbo",
    },
)
__all__ = ["CCVAEConfig", "CCVAEFamily", "CCVAEModel", "CCVAERepresentation", "CCVAE_ELBO"]
