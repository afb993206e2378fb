"""A full-rank Gaussian guide: ``q(z | x) = MultivariateNormal(mu(x), S(x) S(x)^T)`` over the whole
``z = (z_c, z_s)``, with ``S`` a lower-triangular Cholesky factor read from the encoder.

With ``z_c`` first in ``z``, the factor splits into blocks::

    S = [[S_cc,  0  ],        z_c       ~ MVN(mu_c, S_cc S_cc^T)                       (the marginal)
         [S_sc, S_ss]]        z_s | z_c ~ MVN(mu_s + S_sc S_cc^{-1} (z_c - mu_c), S_ss S_ss^T)

so the ``z_c`` site carries the exact marginal of the joint (the ELBO's ``K`` samples for
``q(y | x)`` come from it) and the two sites together are the joint: ``log q(z_c) + log q(z_s | z_c)
= log MVN(z; mu, S S^T)``. The marginal couples the labels' blocks, so it is laid out in the labels
plate by :class:`~pyro_ccvae.models.ccvae.guides.base.JointOverLabels`.

Both Gaussians are ``N(0, I)`` pushed through Pyro's cached
:class:`~pyro.distributions.transforms.LowerCholeskyAffine`, not ``MultivariateNormal``: the
log-density of a draw then comes from the noise ``eps`` that made it, and ``z_s`` reads ``eps_c``
itself. ``MultivariateNormal`` would re-solve ``S^{-1} (z - mu)``, and with a factor as
ill-conditioned as training makes it (condition numbers of 1e8 were seen on ``digits`` within
fifteen steps) that solve loses every digit in float32: ``log q`` of -1e26 for a sample of ``q``.
"""
from __future__ import annotations

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import LowerCholeskyAffine
from torch.nn import functional as F

from .. import sites
from ....nets import ConvEncoder
from .base import CCVAEGuide, JointOverLabels


class BatchedLowerCholeskyAffine(LowerCholeskyAffine):
    """Pyro's :class:`~pyro.distributions.transforms.LowerCholeskyAffine` (``y = loc + S x``) for a
    batch of factors ``S [B, n, n]``: its ``log_abs_det_jacobian`` reads ``S.diag()``, which takes
    one matrix; here each row of the batch gets the log-determinant of its own factor."""

    def log_abs_det_jacobian(self, x, y):
        log_det = torch.diagonal(self.scale_tril, dim1=-2, dim2=-1).log().sum(-1)  # [B]
        return log_det.expand(x.shape[:-1])

    def with_cache(self, cache_size=1):
        if self._cache_size == cache_size:
            return self
        return BatchedLowerCholeskyAffine(self.loc, self.scale_tril, cache_size=cache_size)


def _standard_normal(like: torch.Tensor) -> dist.Distribution:
    """``N(0, I)`` with the batch and event shape of ``like [B, n]``."""
    return dist.Normal(torch.zeros_like(like), torch.ones_like(like)).to_event(1)


class FullRankGuide(CCVAEGuide):
    """``z ~ MultivariateNormal(mu(x), scale_tril = S(x))`` over ``z = (z_c, z_s)``, sampled as
    ``z_c`` from its marginal, then ``z_s`` from its conditional given ``z_c``.

    The diagonal of ``S`` is ``softplus(.) + 1e-4``; the ``D (D - 1) / 2`` entries below it come
    from the encoder divided by ``sqrt(D)`` (``D = L d_c + d_s``), so the guide starts close to
    the mean-field one and every correlation is learnt.

    :param off_diagonal_scale: multiplies the encoder's below-diagonal outputs (default
        ``1 / sqrt(D)``); 0 gives a diagonal Gaussian.
    """

    def __init__(
        self, num_labels: int, z_char_dim: int, z_style_dim: int, channels: int, image_size: int,
        num_classes=None, off_diagonal_scale: Optional[float] = None,
    ):  # fmt: skip
        super().__init__(num_labels, z_char_dim, z_style_dim, num_classes)
        self.char_dim = num_labels * z_char_dim
        self.z_dim = dim = self.char_dim + z_style_dim
        self.off_diagonal_scale = dim**-0.5 if off_diagonal_scale is None else float(off_diagonal_scale)
        rows, cols = torch.tril_indices(dim, dim, offset=-1)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        # per image: mu [D], the diagonal of S [D], the entries below it [D (D - 1) / 2]
        self.sizes = [dim, dim, rows.numel()]
        self.encoder = ConvEncoder(channels, image_size, sum(self.sizes))

    def loc_scale_tril(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu [B, D]`` and the Cholesky factor ``S [B, D, D]`` of the joint over ``z = (z_c, z_s)``
        (``z_c`` flattened label-major first)."""
        loc, raw_diag, lower = self.encoder(x).split(self.sizes, dim=-1)
        tril = torch.diag_embed(F.softplus(raw_diag) + 1e-4)
        tril[:, self._rows, self._cols] = lower * self.off_diagonal_scale
        return loc, tril

    def sample_latents(self, x, labels):
        loc, tril = self.loc_scale_tril(x)
        n = self.char_dim
        loc_c, loc_s = loc[:, :n], loc[:, n:]
        tril_cc, tril_sc, tril_ss = tril[:, :n, :n], tril[:, n:, :n], tril[:, n:, n:]
        # The top-left block of a Cholesky factor is the Cholesky factor of the marginal.
        to_char = BatchedLowerCholeskyAffine(loc_c, tril_cc, cache_size=1)
        q_c = JointOverLabels(dist.TransformedDistribution(_standard_normal(loc_c), to_char), self.num_labels)
        with labels:
            z_c = pyro.sample(sites.Z_C, q_c)
        # z_c = mu_c + S_cc eps_c, and the joint's z_s = mu_s + S_sc eps_c + S_ss eps_s. For the
        # guide's own draw, inv returns the cached eps_c; for a replayed z_c it solves for it.
        eps_c = to_char.inv(q_c.flat(z_c))
        to_style = BatchedLowerCholeskyAffine(loc_s + (tril_sc @ eps_c.unsqueeze(-1)).squeeze(-1), tril_ss, cache_size=1)
        pyro.sample(sites.Z_S, dist.TransformedDistribution(_standard_normal(loc_s), to_style))
        return z_c

    def mean(self, x):
        loc = self.encoder(x).split(self.sizes, dim=-1)[0]
        z_c = loc[:, : self.char_dim].reshape(x.shape[0], self.num_labels, self.z_char_dim)
        return z_c, loc[:, self.char_dim :]
