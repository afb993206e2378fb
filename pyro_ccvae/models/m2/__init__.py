"""M2 (Kingma et al., "Semi-supervised learning with deep generative models", NeurIPS 2014):
``--model m2``.

=====================  ==================================================================
:mod:`.config`         :class:`M2Config`, the ``model`` section of a run's config
:mod:`.family`         :class:`M2Family`: what training and analysis ask of the family (imports torch)
:mod:`.model`          ``p(y) p(z) p(x | y, z)`` and the guide ``q(y | x) q(z | x, y)``
:mod:`.elbo`           the objective: an exact sum over labels, or a score-function estimate
:mod:`.sites`          site and plate names
:mod:`.representation` what analysis asks of a trained M2 (:class:`M2Representation`)
=====================  ==================================================================

The networks are the CCVAE's (:mod:`pyro_ccvae.nets`), as is the likelihood.
"""
# Only the config is light: the names below are imported when first used (:mod:`pyro_ccvae.lazy`).
from __future__ import annotations

from ...lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "M2Config": ".config",
        "M2Family": ".family",
        "M2Guide": ".model",
        "M2Model": ".model",
        "M2Representation": ".representation",
    },
)
__all__ = ["M2Config", "M2Family", "M2Guide", "M2Model", "M2Representation"]
