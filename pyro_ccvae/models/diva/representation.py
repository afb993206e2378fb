"""DIVA as analysis sees it: every capability, as the CCVAE's (its generative model and latent
layout are the CCVAE's; only the objective and the classifier's parametrisation differ), so
:class:`DIVARepresentation` is a :class:`~pyro_ccvae.models.ccvae.representation.CCVAERepresentation`.
"""
from __future__ import annotations

import torch

from ..ccvae.representation import CCVAERepresentation
from . import sites
from .elbo import diva_elbo


class DIVARepresentation(CCVAERepresentation):
    """The capabilities of a DIVA ``model`` (:class:`~.model.DIVAModel`) and ``guide`` (:class:`~.model.DIVAGuide`)."""

    family = "diva"
    #: the auxiliary classifier term is a factor of the guide, not a part of ``q(z | x)``.
    hidden_guide_sites = (sites.CLASSIFICATION,)

    @torch.no_grad()
    def classify(self, z_c: torch.Tensor) -> torch.Tensor:
        """``q(y_i = k | z_c^i)`` for ``z_c [..., B, L, d_c]``: ``[..., B, L, K]`` (DIVA's classifier
        gives normalised log-probabilities)."""
        return self.guide.classifier(z_c.transpose(-3, -2)).exp().transpose(-3, -2)

    def log_label_prior(self) -> torch.Tensor:
        """``log p(y_i = k)`` ``[L, K]``, a label's missing classes at the finite
        :data:`~pyro_ccvae.models.labels.PAD_LOGIT` as the model enumerates them."""
        return self.model.label_log_probs()

    def objective(self):
        """DIVA's objective (:func:`~.elbo.diva_elbo`)."""
        return diva_elbo()
