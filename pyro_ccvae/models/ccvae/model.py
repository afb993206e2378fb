"""The CCVAE generative model (Joy et al., "Capturing Label Characteristics in VAEs", ICLR 2021).

Generative story, for each data point and each label ``i = 1..L``::

    y_i     ~ Bernoulli(pi_i)                           pi_i: label frequency among labelled points
    z_c^i   ~ Normal(mu_psi^i(y_i), sigma_psi^i(y_i))   the conditional prior, d_c dims per label
    z_s     ~ Normal(0, I)                              style, d_s dims
    x       ~ p(x | decoder(z_c, z_s))                  Laplace(., 1) in the paper; see likelihoods.py

Sites and plates are named in :mod:`.sites`.
"""
from __future__ import annotations

from typing import Optional, Union

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

from . import sites
from ...likelihoods import Likelihood, build_likelihood
from ...nets import ConvDecoder


def fill_labels(x: torch.Tensor, y: Optional[torch.Tensor], mask: Optional[torch.Tensor], num_labels: int):
    """``(y, mask)`` as a filled ``[B, L]`` float tensor and a ``[B, L]`` bool mask.

    No ``y`` means no label is seen; ``y`` without ``mask`` means every label is seen.
    """
    batch = x.shape[0]
    if y is None:
        y = x.new_zeros(batch, num_labels)
        mask = torch.zeros(batch, num_labels, dtype=torch.bool, device=x.device)
    elif mask is None:
        mask = torch.ones(batch, num_labels, dtype=torch.bool, device=x.device)
    # Unobserved entries must still hold a valid 0/1 value (Pyro validates the whole tensor).
    return torch.where(mask, y, torch.zeros_like(y)), mask


def merge_characteristic(z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """``z_c [..., B, L, d_c]`` and ``z_s [..., B, d_s]`` -> the decoder's input ``[..., B, L*d_c + d_s]``."""
    z_s = z_s.expand(z_c.shape[:-2] + z_s.shape[-1:])
    return torch.cat([z_c.flatten(-2), z_s], dim=-1)


class ConditionalPrior(PyroModule):
    """``p_psi(z_c^i | y_i)``: one learnable location and positive scale per label and label value.

    Locations start at -2 (``y_i = 0``) and +2 (``y_i = 1``), scales at 1, as in the paper's code.
    """

    def __init__(self, num_labels: int, z_char_dim: int):
        super().__init__()
        loc = torch.tensor([-2.0, 2.0]).repeat(num_labels, z_char_dim, 1).permute(0, 2, 1)
        self.loc = torch.nn.Parameter(loc.contiguous())  # [L, 2, d_c]
        self.scale = PyroParam(torch.ones(num_labels, 2, z_char_dim), constraint=constraints.positive)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y [..., L, B]`` (0/1 floats, plate layout) -> ``loc, scale`` of shape ``[..., L, B, d_c]``."""
        y = y.unsqueeze(-1)
        loc, scale = self.loc.unsqueeze(1), self.scale.unsqueeze(1)  # [L, 1, 2, d_c]
        return (
            loc[..., 0, :] + y * (loc[..., 1, :] - loc[..., 0, :]),
            scale[..., 0, :] + y * (scale[..., 1, :] - scale[..., 0, :]),
        )


class CCVAEModel(PyroModule):
    """The CCVAE model ``p(x, y, z)`` with a Higgins et al. conv decoder.

    :param num_labels: ``L``, the number of binary labels.
    :param channels: image channels (1 for CheXpert, 3 for CelebA).
    :param image_size: 32 or 64.
    :param z_style_dim: ``d_s``.
    :param z_char_dim: ``d_c``, latent dims per label (default 1).
    :param likelihood: a key of :data:`pyro_ccvae.likelihoods.LIKELIHOODS`, or a
        :class:`~pyro_ccvae.likelihoods.Likelihood` to use as it is.
    :param decoder: the network ``z [..., L*d_c + d_s] -> decoder output [..., C, S, S]``
        (default: the Higgins et al. :class:`~pyro_ccvae.nets.ConvDecoder`).
    """

    def __init__(
        self,
        num_labels: int,
        channels: int,
        image_size: int,
        z_style_dim: int,
        z_char_dim: int = 1,
        likelihood: Union[str, Likelihood] = "laplace",
        decoder: Optional[torch.nn.Module] = None,
    ):
        super().__init__(name="model")
        self.num_labels, self.z_char_dim, self.z_style_dim = num_labels, z_char_dim, z_style_dim
        self.likelihood = build_likelihood(likelihood, channels) if isinstance(likelihood, str) else likelihood
        self.decoder = decoder if decoder is not None else ConvDecoder(num_labels * z_char_dim + z_style_dim, channels, image_size)
        self.conditional_prior = ConditionalPrior(num_labels, z_char_dim)
        # pi: set from the labelled training subset by :meth:`set_label_prior`.
        self.register_buffer("label_probs", torch.full((num_labels,), 0.5))

    def set_label_prior(self, labels: torch.Tensor, mask: torch.Tensor) -> None:
        """Set ``pi_i`` to the frequency of ``y_i = 1`` among the points where label ``i`` is seen.

        A label never seen keeps ``pi_i = 0.5``. Frequencies are clamped away from 0 and 1 so
        ``log p(y)`` stays finite for a label that is constant in the labelled subset.
        """
        mask = mask.to(labels.dtype)
        seen = mask.sum(0)
        freq = torch.where(seen > 0, (labels * mask).sum(0) / seen.clamp(min=1), torch.full_like(seen, 0.5))
        self.label_probs.copy_(freq.clamp(1e-3, 1 - 1e-3).to(self.label_probs))

    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        """The expected image ``E[x | z]`` for ``z_c [..., B, L, d_c]`` and ``z_s [..., B, d_s]``."""
        return self.likelihood.mean(self.decoder(merge_characteristic(z_c, z_s)))

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        """:param x: images ``[B, C, S, S]`` in ``[0, 1]``; :param y: labels ``[B, L]``;
        :param mask: ``[B, L]`` bool, ``True`` where a label is seen."""
        y, mask = fill_labels(x, y, mask, self.num_labels)
        batch, num_labels = y.shape
        with pyro.plate(sites.DATA_PLATE, batch, dim=sites.DATA_DIM):
            # z_s is sampled before the labels block, which keeps Pyro's dependency check quiet.
            z_s = pyro.sample(
                sites.Z_S, dist.Normal(x.new_zeros(()), x.new_ones(())).expand([batch, self.z_style_dim]).to_event(1)
            )
            with pyro.plate(sites.LABELS_PLATE, num_labels, dim=sites.LABELS_DIM):
                prior_y = dist.Bernoulli(probs=self.label_probs.unsqueeze(-1).expand(num_labels, batch))
                y_all = pyro.sample(sites.Y, prior_y, obs=y.T, obs_mask=mask.T)
                loc, scale = self.conditional_prior(y_all)
                z_c = pyro.sample(sites.Z_C, dist.Normal(loc, scale).to_event(1))
            out = self.decoder(merge_characteristic(z_c.transpose(-3, -2), z_s))
            pyro.sample(sites.X, self.likelihood.distribution(out), obs=x)
