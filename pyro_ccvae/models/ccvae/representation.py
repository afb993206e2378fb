"""The CCVAE as analysis sees it: every capability of :mod:`pyro_ccvae.models.base`.

Label ``i`` has ``K_i`` classes; class probabilities are ``[..., B, L, K]`` with
``K = max K_i`` (classes a label lacks have probability 0; for a binary label they are
``(q(y_i = 0 | z_c^i), q(y_i = 1 | z_c^i))``). The importance weights of ``log p(x)`` trace the
guide (any guide) and replay the model on its samples.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..base import CAPABILITIES, LabelPriorFromModel, Representation
from ..encode_once import importance_log_weights
from ..labels import fill_labels
from . import sites
from .config import CCVAEConfig
from .elbo import CCVAE_ELBO, log_q_latents
from .guides.base import label_probs


class CCVAERepresentation(LabelPriorFromModel, Representation):
    """The capabilities of a CCVAE ``model`` and ``guide`` (anything with ``guide.mean``,
    ``guide.classifier``, ``model.decode``, ``model.conditional_prior`` and ``model.label_probs``).
    A family with the CCVAE's latent layout and generative model (DIVA) subclasses it.

    :param k_samples: ``K`` of the CCVAE objective reported by :meth:`unsupervised_objective`.
    """

    capabilities = frozenset(CAPABILITIES)
    family = "ccvae"
    #: guide sites that are not part of ``q(z | x)`` and stay out of :meth:`log_weights`' traces.
    hidden_guide_sites: tuple[str, ...] = ()

    def __init__(self, model, guide, label_names, device: torch.device, k_samples: int = CCVAEConfig.k_samples):
        super().__init__(self.family, label_names, model.num_classes)
        self.model, self.guide, self.device, self.k_samples = model, guide, torch.device(device), k_samples

    # --- encode, predict, decode ---------------------------------------------------------

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means ``z_c [B, L, d_c]`` and ``z_s [B, d_s]``."""
        return self.guide.mean(x)

    @torch.no_grad()
    def classify(self, z_c: torch.Tensor) -> torch.Tensor:
        """``q(y_i = k | z_c^i)`` for ``z_c [..., B, L, d_c]``: ``[..., B, L, K]``."""
        return label_probs(self.guide.classifier, z_c)

    @torch.no_grad()
    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        """The expected image ``E[x | z]`` for ``z_c [..., B, L, d_c]`` and ``z_s [..., B, d_s]``."""
        return self.model.decode(z_c, z_s)

    # --- the prior (p(y) from LabelPriorFromModel) ---------------------------------------------

    @torch.no_grad()
    def sample_characteristic(self, y: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """``z_c ~ p(z_c | y)`` (its mean if not ``sample``) for labels ``y [..., B, L]``: ``[..., B, L, d_c]``."""
        loc, scale = self.model.conditional_prior(y.transpose(-1, -2).to(self.model.label_probs))  # [..., L, B, d_c]
        z = torch.distributions.Normal(loc, scale).sample() if sample else loc
        return z.transpose(-2, -3)

    def sample_style(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``z_s ~ Normal(0, I)``: ``[*shape, d_s]``."""
        return torch.randn(*shape, self.model.z_style_dim, device=self.device)

    @torch.no_grad()
    def intervene(self, z_c: torch.Tensor, label: int, value, sample: bool = True) -> torch.Tensor:
        """``z_c [..., B, L, d_c]`` with block ``label`` drawn from ``p(z_c^label | y_label = value)``
        (its mean if not ``sample``); ``value``: a class, or one per image ``[B]``."""
        value = self.checked_class(label, value, z_c)
        y = torch.zeros(z_c.shape[:-1], dtype=z_c.dtype, device=z_c.device)
        y[..., label] = value
        new = self.sample_characteristic(y, sample)
        z = z_c.clone()
        z[..., label, :] = new[..., label, :]
        return z

    def class_prior(self, label: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``loc, scale [K_label, d_c]`` of ``p(z_c^label | y_label = k)`` for each class ``k``."""
        prior, k = self.model.conditional_prior, self.num_classes[label]
        with torch.no_grad():
            return prior.loc[label, :k].detach(), prior.scale[label, :k].detach()

    # --- likelihood ----------------------------------------------------------------------------

    @property
    def likelihood_is_density(self) -> bool:
        return self.model.likelihood.is_density

    def log_label_prior(self) -> torch.Tensor:
        """``log p(y_i = k)`` ``[L, K]`` (``-inf`` for the classes a label lacks)."""
        return self.model.label_probs.log()

    def log_prior_characteristic(self, z_c: torch.Tensor) -> torch.Tensor:
        """``log p(y_i = k) + log p(z_c^i | y_i = k)`` for each class: ``z_c [L, N, d_c]`` -> ``[K, L, N]``."""
        model = self.model
        classes = max(self.num_classes)
        y = torch.arange(classes, device=z_c.device).reshape(classes, 1, 1).expand(classes, model.num_labels, 1)
        loc, scale = model.conditional_prior(y)  # [K, L, 1, d_c]
        log_p_z = torch.distributions.Normal(loc, scale).log_prob(z_c).sum(-1)
        return log_p_z + self.log_label_prior().T.unsqueeze(-1)  # log p(y): [K, L, 1]

    @torch.no_grad()
    def log_weights(
        self, x: torch.Tensor, num_samples: int, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log importance weights ``[K, B]`` of ``log p(x)`` and of ``log p(x, y_o)`` for images
        ``x [B, C, H, W]`` (labels ``y [B, L]`` seen where ``mask``; none seen when ``y`` is None).

        The samples come from ``poutine.trace(guide)`` on ``x`` repeated ``k`` times along the data
        plate (vectorised without assuming anything of the guide but its sites; its networks see
        each image once, :mod:`~pyro_ccvae.models.encode_once`); ``log p(x|z)`` and
        ``log p(z_s)`` come from the model replayed on them, so the model's likelihood is used.
        """
        y, mask = fill_labels(x, y, mask, self.model.num_labels)

        def log_q(guide_trace, rows):  # every latent site of the guide
            return log_q_latents(guide_trace, rows, lambda site: site["fn"].log_prob(site["value"]))

        return importance_log_weights(
            self.model, self.guide, x, num_samples, y, mask, sites, log_q, self.log_prior_characteristic,
            hide=self.hidden_guide_sites,
        )  # fmt: skip

    def objective(self):
        """The family's objective, a Pyro ELBO, as :meth:`unsupervised_objective` reports it."""
        return CCVAE_ELBO(k_samples=self.k_samples, jensen="exact")

    @torch.no_grad()
    def unsupervised_objective(self, x: torch.Tensor) -> float:
        """The family's objective with no label seen (the CCVAE's eq. 5), summed over the images ``x``."""
        return -self.objective().loss(self.model, self.guide, x)
