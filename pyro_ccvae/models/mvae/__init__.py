"""The MVAE (Wu & Goodman, "Multimodal Generative Models for Scalable Weakly-Supervised
Learning", NeurIPS 2018), the image and each label a modality: ``--model mvae``.

=====================  ==================================================================
:mod:`.config`         :class:`MVAEConfig`, the ``model`` section of a run's config
:mod:`.family`         :class:`MVAEFamily`: what training and analysis ask of the family (imports torch)
:mod:`.model`          ``p(z) p(x|z) prod_i p(y_i|z)`` and the product-of-experts guide
:mod:`.elbo`           the sub-sampled objective (:func:`mvae_elbo`)
:mod:`.sites`          site and plate names
:mod:`.representation` what analysis asks of a trained MVAE (:class:`MVAERepresentation`)
=====================  ==================================================================

The image expert is the CCVAE's conv encoder and ``p(x|z)`` its decoder and likelihood.
"""
# Only the config is light: the names below are imported when first used (:mod:`pyro_ccvae.lazy`).
from __future__ import annotations

from ...lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MVAEConfig": ".config",
        "MVAEFamily": ".family",
        "MVAEGuide": ".model",
        "MVAEModel": ".model",
        "MVAERepresentation": ".representation",
    },
)
__all__ = ["MVAEConfig", "MVAEFamily", "MVAEGuide", "MVAEModel", "MVAERepresentation"]
