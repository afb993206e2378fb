"""A correlated Gaussian guide: each characteristic block ``z_c^i`` mean-field, and ``z_s``
given ``z_c`` a low-rank-plus-diagonal Gaussian whose mean leans linearly on ``z_c``.

Jointly ``(z_c, z_s)`` is Gaussian with a full (structured) covariance, unlike the paper's
mean-field guide. ``z_c`` is sampled first so that its site holds the marginal ``q(z_c | x)``,
which the ELBO samples from to estimate ``q(y | x)``.
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch.nn import functional as F

from .. import sites
from ....nets import ConvEncoder
from .base import CCVAEGuide


class LowRankGuide(CCVAEGuide):
    """``z_c^i ~ Normal(mu_c^i(x), sigma_c^i(x))``,
    ``z_s | z_c ~ LowRankMVN(mu_s(x) + A (z_c - mu_c(x)), U(x) U(x)^T + D(x))``.

    :param rank: rank of ``U`` (default 4).
    """

    def __init__(
        self, num_labels: int, z_char_dim: int, z_style_dim: int, channels: int, image_size: int, rank: int = 4,
        num_classes=None,
    ):  # fmt: skip
        super().__init__(num_labels, z_char_dim, z_style_dim, num_classes)
        if rank < 1:  # 0 or less would fail later, in the encoder's split, with no word of the rank
            raise ValueError(f"the low-rank guide needs rank >= 1 (--guide-option rank=N), got {rank}")
        self.rank = rank
        char_dim = num_labels * z_char_dim
        # per image: mu_c, sigma_c, mu_s, D, U (d_s x rank)
        self.sizes = [char_dim, char_dim, z_style_dim, z_style_dim, z_style_dim * rank]
        self.encoder = ConvEncoder(channels, image_size, sum(self.sizes))
        # A: how style leans on the characteristic blocks, shared across images; starts uncoupled.
        self.coupling = torch.nn.Parameter(torch.zeros(z_style_dim, char_dim))

    def _params(self, x):
        loc_c, raw_scale_c, loc_s, raw_diag, factor = self.encoder(x).split(self.sizes, dim=-1)
        batch = x.shape[0]
        return (
            loc_c.reshape(batch, self.num_labels, self.z_char_dim),
            (F.softplus(raw_scale_c) + 1e-4).reshape(batch, self.num_labels, self.z_char_dim),
            loc_s,
            F.softplus(raw_diag) + 1e-4,
            factor.reshape(batch, self.z_style_dim, self.rank) / self.rank**0.5,
        )

    def sample_latents(self, x, labels):
        loc_c, scale_c, loc_s, diag, factor = self._params(x)
        with labels:
            z_c = pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), scale_c.transpose(0, 1)).to_event(1))
        shift = (z_c.transpose(0, 1) - loc_c).flatten(-2) @ self.coupling.T
        pyro.sample(sites.Z_S, dist.LowRankMultivariateNormal(loc_s + shift, factor, diag))
        return z_c

    def mean(self, x):
        loc_c, _, loc_s, _, _ = self._params(x)
        return loc_c, loc_s
