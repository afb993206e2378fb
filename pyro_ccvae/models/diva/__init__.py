"""The modified DIVA of the CCVAE paper's appendix C.4 (after Ilse et al., "DIVA: Domain
Invariant Variational Autoencoders", 2019): ``--model diva``.

=====================  ==================================================================
:mod:`.config`         :class:`DIVAConfig`, the ``model`` section of a run's config
:mod:`.family`         :class:`DIVAFamily`: what training and analysis ask of the family (imports torch)
:mod:`.model`          the CCVAE's generative model and guide, with DIVA's ``beta`` and ``alpha``
:mod:`.elbo`           the objective (:func:`diva_elbo`)
:mod:`.sites`          site and plate names
:mod:`.representation` what analysis asks of a trained DIVA (:class:`DIVARepresentation`)
=====================  ==================================================================

No ``z_d`` (the paper's modification): the latents are the CCVAE's ``(z_c, z_s)``, on the
CCVAE's networks and likelihood.
"""
# Only the config is light: the names below are imported when first used (:mod:`pyro_ccvae.lazy`).
from __future__ import annotations

from ...lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DIVAConfig": ".config",
        "DIVAFamily": ".family",
        "DIVAGuide": ".model",
        "DIVAModel": ".model",
        "DIVARepresentation": ".representation",
    },
)
__all__ = ["DIVAConfig", "DIVAFamily", "DIVAGuide", "DIVAModel", "DIVARepresentation"]
