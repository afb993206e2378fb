"""What every CCVAE guide shares: the plates, the diagonal classifier and the ``y`` site.

A guide subclasses :class:`CCVAEGuide` and implements :meth:`CCVAEGuide.sample_latents`
(sample ``z_s`` and ``z_c``, the latter inside the labels plate it is given) and :meth:`CCVAEGuide.mean`.
Neither the model nor the ELBO changes when the guide does (DESIGN.md §3).
"""
from __future__ import annotations

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule

from .. import sites
from ..model import fill_labels


def labels_plate(num_labels: int):
    """The labels plate, nested inside the data plate (per-label sites have batch shape ``(L, B)``)."""
    return pyro.plate(sites.LABELS_PLATE, num_labels, dim=sites.LABELS_DIM)


class DiagonalClassifier(torch.nn.Module):
    """``q_varphi(y_i | z_c^i) = Bernoulli(sigmoid(w_i . z_c^i + b_i))``: label ``i`` sees only its block."""

    def __init__(self, num_labels: int, z_char_dim: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(num_labels, z_char_dim))
        self.bias = torch.nn.Parameter(torch.zeros(num_labels))

    def forward(self, z_c: torch.Tensor) -> torch.Tensor:
        """``z_c [..., L, B, d_c]`` (plate layout) -> logits ``[..., L, B]``."""
        return (z_c * self.weight.unsqueeze(1)).sum(-1) + self.bias.unsqueeze(-1)


def label_probs(classifier: torch.nn.Module, z_c: torch.Tensor) -> torch.Tensor:
    """``q(y_i = 1 | z_c^i)`` for ``z_c [B, L, d_c]`` (data-major): ``[B, L]``."""
    return torch.sigmoid(classifier(z_c.transpose(0, 1))).T


def sample_labels(classifier: torch.nn.Module, z_c: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
    """The guide's ``y`` sites, inside both plates: ``y ~ q(y | z_c)`` split by the label mask.

    ``y`` and ``mask`` are in plate layout ``[L, B]``. As with Pyro's ``obs_mask``, the seen part
    is ``y_observed`` (auxiliary: it only feeds the ELBO's supervised terms) and the unseen part
    ``y_unobserved``, which the exact ELBO enumerates. (``pyro.sample(..., obs_mask=...)`` drops
    ``infer``, so the split is written out.) The classifier travels in the sites' ``infer`` so the
    ELBO can evaluate it on detached and extra ``z_c`` samples.
    """
    q_y = dist.Bernoulli(logits=classifier(z_c))
    with poutine.mask(mask=mask):
        pyro.sample(sites.Y_OBSERVED, q_y, obs=y, infer={"is_auxiliary": True, sites.CLASSIFIER: classifier})
    with poutine.mask(mask=~mask):
        pyro.sample(sites.Y_UNOBSERVED, q_y, infer={"enumerate": "parallel", sites.CLASSIFIER: classifier})


class CCVAEGuide(PyroModule):
    """Base class of the guides ``q(z | x) q(y | z_c)``.

    :param num_labels: ``L``; :param z_char_dim: ``d_c``; :param z_style_dim: ``d_s``.
    """

    def __init__(self, num_labels: int, z_char_dim: int, z_style_dim: int, **unused):
        super().__init__(name="guide")
        self.num_labels, self.z_char_dim, self.z_style_dim = num_labels, z_char_dim, z_style_dim
        self.classifier = DiagonalClassifier(num_labels, z_char_dim)

    def sample_latents(self, x: torch.Tensor, labels: pyro.plate) -> torch.Tensor:
        """Inside the data plate, sample ``z_s`` (``[B, d_s]``) and, inside the ``labels`` plate,
        ``z_c`` (``[L, B, d_c]``); return ``z_c``.

        The ``z_c`` site's distribution must be the marginal ``q(z_c | x)``: the ELBO draws its
        K extra samples for ``q(y | x)`` from it. Sample ``z_c`` first if ``z_s`` depends on it.
        """
        raise NotImplementedError

    def mean(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means ``z_c [B, L, d_c]`` and ``z_s [B, d_s]`` (for analysis and classification)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``q(y_i = 1 | x)`` evaluated at the posterior mean of ``z_c``: ``[B, L]`` probabilities."""
        return label_probs(self.classifier, self.mean(x)[0])

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        y, mask = fill_labels(x, y, mask, self.num_labels)
        with pyro.plate(sites.DATA_PLATE, x.shape[0], dim=sites.DATA_DIM):
            labels = labels_plate(self.num_labels)
            z_c = self.sample_latents(x, labels)
            with labels:
                sample_labels(self.classifier, z_c, y.T, mask.T)
