"""DIVA as analysis sees it: every capability, as the CCVAE (its generative model is the
CCVAE's; only the objective differs).

Class probabilities are ``[..., B, L, K]`` (``K = max K_i``); interventions draw ``z_c^i`` from
``p(z_c^i | y_i = k)``; traversals run between the classes' prior locations. The importance
weights of ``log p(x)`` use the mean-field guide's ``q(z | x)`` and the model's densities.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..base import CAPABILITIES, LabelPriorFromModel, Representation
from ..encode_once import importance_log_weights
from ..labels import fill_labels
from . import sites
from .elbo import diva_elbo

class DIVARepresentation(LabelPriorFromModel, Representation):
    """The capabilities of a DIVA ``model`` (:class:`~.model.DIVAModel`) and ``guide`` (:class:`~.model.DIVAGuide`)."""

    capabilities = frozenset(CAPABILITIES)

    def __init__(self, model, guide, label_names, num_classes, device: torch.device):
        super().__init__("diva", label_names, num_classes)
        self.model, self.guide, self.device = model, guide, torch.device(device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means ``z_c [B, L, d_c]`` and ``z_s [B, d_s]``."""
        return self.guide.mean(x)

    @torch.no_grad()
    def classify(self, z_c: torch.Tensor) -> torch.Tensor:
        """``q(y_i = k | z_c^i)`` for ``z_c [..., B, L, d_c]``: ``[..., B, L, K]``."""
        return self.guide.classifier(z_c.transpose(-3, -2)).exp().transpose(-3, -2)

    @torch.no_grad()
    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z_c, z_s)


    @torch.no_grad()
    def sample_characteristic(self, y: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """``z_c ~ p(z_c | y)`` (its mean if not ``sample``) for class indices ``y [..., B, L]``: ``[..., B, L, d_c]``."""
        loc, scale = self.model.conditional_prior(y.transpose(-1, -2))  # [..., L, B, d_c]
        z = torch.distributions.Normal(loc, scale).sample() if sample else loc
        return z.transpose(-2, -3)

    def sample_style(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``z_s ~ Normal(0, I)``: ``[*shape, d_s]``."""
        return torch.randn(*shape, self.model.z_style_dim, device=self.device)

    @torch.no_grad()
    def intervene(self, z_c: torch.Tensor, label: int, value, sample: bool = True) -> torch.Tensor:
        """``z_c`` with block ``label`` drawn from ``p(z_c^label | y_label = value)`` (its mean if
        not ``sample``); ``value``: a class, or one per image ``[B]``."""
        y = torch.zeros(z_c.shape[:-1], dtype=z_c.dtype, device=z_c.device)
        y[..., label] = torch.as_tensor(value, device=z_c.device, dtype=z_c.dtype)
        z = z_c.clone()
        z[..., label, :] = self.sample_characteristic(y, sample)[..., label, :]
        return z

    def class_prior(self, label: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``loc, scale [K_label, d_c]`` of ``p(z_c^label | y_label = k)`` for each of its classes."""
        prior, k = self.model.conditional_prior, self.num_classes[label]
        with torch.no_grad():
            return prior.loc[label, :k].detach(), prior.scale[label, :k].detach()

    @property
    def likelihood_is_density(self) -> bool:
        return self.model.likelihood.is_density

    def _log_prior_characteristic(self, z_c: torch.Tensor) -> torch.Tensor:
        """``log p(y_i = k) + log p(z_c^i | y_i = k)`` for every class: ``z_c [L, N, d_c]`` -> ``[K, L, N]``."""
        model = self.model
        k = torch.arange(model.max_classes, device=z_c.device).reshape(-1, 1, 1).expand(-1, model.num_labels, 1)
        loc, scale = model.conditional_prior(k)  # [K, L, 1, d_c]
        log_p_z = torch.distributions.Normal(loc, scale).log_prob(z_c).sum(-1)
        return log_p_z + model.label_log_probs().T.unsqueeze(-1)

    @torch.no_grad()
    def log_weights(
        self, x: torch.Tensor, num_samples: int, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log importance weights ``[S, B]`` of ``log p(x)`` and of ``log p(x, y_o)``, with
        ``z ~ q(z | x)`` from the traced guide and the densities of the replayed model::

            log w(x)      = log p(x|z) + log p(z_s) + sum_i log sum_k p(k) p(z_c^i|k) - log q(z|x)
            log w(x, y_o) = the same with p(y_i) p(z_c^i | y_i) for the seen labels
        """
        y, mask = fill_labels(x, y, mask, self.model.num_labels)

        def log_q(guide_trace, rows):
            def log_prob(name):
                site = guide_trace.nodes[name]
                return site["fn"].log_prob(site["value"])

            return log_prob(sites.Z_C).sum(0) + log_prob(sites.Z_S)

        return importance_log_weights(
            self.model, self.guide, x, num_samples, y, mask, sites, log_q, self._log_prior_characteristic,
            hide=[sites.CLASSIFICATION],
        )  # fmt: skip

    @torch.no_grad()
    def unsupervised_objective(self, x: torch.Tensor) -> float:
        """DIVA's objective with no label seen, summed over the images ``x``."""
        return -diva_elbo().loss(self.model, self.guide, x)
