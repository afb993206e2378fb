"""The paper's guide: a mean-field Normal over ``z = (z_c, z_s)`` from a conv encoder."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch.nn import functional as F

from .. import sites
from ....nets import ConvEncoder
from .base import CCVAEGuide


class MeanFieldEncoding:
    """``q(z | x) = Normal(mu(x), sigma(x))``, diagonal, over ``z = (z_c, z_s)`` from one encoder:
    what :class:`MeanFieldGuide` and DIVA's guide share. The guide sets ``encoder`` (images ->
    ``2 * z_dim`` outputs), ``z_dim``, ``num_labels``, ``z_char_dim`` and ``z_style_dim``."""

    def _loc_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The location and scale of ``q(z | x)``, each ``[B, z_dim]``."""
        loc, raw_scale = self.encoder(x).split(self.z_dim, dim=-1)
        return loc, F.softplus(raw_scale) + 1e-4

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, z_dim]`` -> ``z_c [B, L, d_c]``, ``z_s [B, d_s]``."""
        z_c, z_s = z.split([self.z_dim - self.z_style_dim, self.z_style_dim], dim=-1)
        return z_c.reshape(z.shape[0], self.num_labels, self.z_char_dim), z_s

    def mean(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means ``z_c [B, L, d_c]`` and ``z_s [B, d_s]``."""
        return self._split(self._loc_scale(x)[0])


class MeanFieldGuide(MeanFieldEncoding, CCVAEGuide):
    """``q(z | x) = Normal(mu(x), sigma(x))``, diagonal, with the Higgins et al. encoder."""

    def __init__(
        self, num_labels: int, z_char_dim: int, z_style_dim: int, channels: int, image_size: int, num_classes=None
    ):
        super().__init__(num_labels, z_char_dim, z_style_dim, num_classes)
        self.z_dim = num_labels * z_char_dim + z_style_dim
        self.encoder = ConvEncoder(channels, image_size, 2 * self.z_dim)

    def sample_latents(self, x, labels):
        loc, scale = self._loc_scale(x)
        (loc_c, loc_s), (scale_c, scale_s) = self._split(loc), self._split(scale)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, scale_s).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), scale_c.transpose(0, 1)).to_event(1))
