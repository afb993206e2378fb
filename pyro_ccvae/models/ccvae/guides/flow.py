"""A normalizing-flow guide from Pyro's conditional transforms, conditioned on the encoder's features.

``z_c`` comes first, from its marginal, so the ELBO's ``K`` samples for ``q(y | x)`` are true
draws of ``q(z_c | x)``; then ``z_s`` from a flow conditioned on ``x`` and on ``z_c``::

    eps_c ~ N(0, I)                          per label, d_c dims
    z_c^i = mu_c^i(x) + sigma_c^i(x) * Spline_i(eps_c^i; h_i(x))       (per label, elementwise)
    eps_s ~ N(0, I)                          d_s dims
    z_s   = mu_s(x) + sigma_s(x) * (IAF_T o ... o IAF_1)(eps_s; [h_s(x), u])
            u = (z_c - mu_c(x)) / sigma_c(x), the standardised z_c

``Spline_i`` is a monotonic rational-linear spline (Durkan et al. 2019; Dolatabadi et al. 2020,
:class:`~pyro.distributions.transforms.ConditionalSpline`) on ``[-bound, bound]`` (the identity
outside) whose knots a small network reads from the label's context ``h_i(x)``; it shapes the
standardised noise, so the marginal of each block can be skewed, heavy-tailed or multimodal while
``mu_c`` and ``sigma_c`` set where it lies. ``IAF_k`` are conditional affine autoregressive
transforms (:class:`~pyro.distributions.transforms.ConditionalAffineAutoregressive`, the
"stable" variant), alternating the order of the dims.

What it assumes: given ``x``, the labels' blocks are independent, and so are the dims within a
block (the spline is elementwise); ``z_s`` depends on ``x`` and on all of ``z_c``. ``d_s >= 2``.
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import AffineTransform, ConditionalAffineAutoregressive, conditional_spline
from pyro.nn import ConditionalAutoRegressiveNN
from torch.nn import functional as F

from .. import sites
from ....nets import ConvEncoder
from .base import CCVAEGuide


class FlowGuide(CCVAEGuide):
    """``q(z_c | x)``: a conditional spline flow per label; ``q(z_s | z_c, x)``: ``num_flows``
    conditional affine autoregressive layers (see the module doc).

    :param num_flows: autoregressive layers over ``z_s`` (default 2).
    :param count_bins: spline segments per ``z_c`` dim (default 8).
    :param bound: the spline acts on the standardised noise inside ``[-bound, bound]`` (default 4).
    :param context_dim: the encoder's features per label (``h_i``) and for ``z_s`` (``h_s``).
    :param hidden_dim: width of the networks that read the contexts.
    """

    def __init__(
        self, num_labels: int, z_char_dim: int, z_style_dim: int, channels: int, image_size: int, num_classes=None,
        num_flows: int = 2, count_bins: int = 8, bound: float = 4.0, context_dim: int = 16, hidden_dim: int = 64,
    ):  # fmt: skip
        super().__init__(num_labels, z_char_dim, z_style_dim, num_classes)
        if z_style_dim < 2:
            raise ValueError(f"the flow guide needs z_style_dim >= 2 for its autoregressive layers, got {z_style_dim}")
        if num_flows < 1:
            raise ValueError(f"num_flows must be at least 1, got {num_flows}")
        self.char_dim = num_labels * z_char_dim
        self.context_dim = context_dim
        # per image: mu_c, sigma_c, h_1..h_L, mu_s, sigma_s, h_s
        self.sizes = [self.char_dim, self.char_dim, num_labels * context_dim, z_style_dim, z_style_dim, context_dim]
        self.encoder = ConvEncoder(channels, image_size, sum(self.sizes))
        self.char_spline = conditional_spline(z_char_dim, context_dim, [hidden_dim], count_bins=count_bins, bound=bound)
        style_context = context_dim + self.char_dim
        order = torch.arange(z_style_dim)
        self.style_flows = torch.nn.ModuleList(
            ConditionalAffineAutoregressive(
                # A fixed order per layer (alternately reversed): no random numbers at build time.
                ConditionalAutoRegressiveNN(z_style_dim, style_context, [hidden_dim], permutation=order if k % 2 == 0 else order.flip(0)),
                stable=True,
            )
            for k in range(num_flows)
        )

    def _params(self, x: torch.Tensor):
        loc_c, raw_scale_c, context_c, loc_s, raw_scale_s, context_s = self.encoder(x).split(self.sizes, dim=-1)
        batch = x.shape[0]
        shape = (batch, self.num_labels, self.z_char_dim)
        return (
            loc_c.reshape(shape),
            (F.softplus(raw_scale_c) + 1e-4).reshape(shape),
            context_c.reshape(batch, self.num_labels, self.context_dim),
            loc_s,
            F.softplus(raw_scale_s) + 1e-4,
            context_s,
        )

    def characteristic_posterior(self, loc_c, scale_c, context_c) -> dist.TransformedDistribution:
        """``q(z_c | x)`` in plate layout (batch ``(L, B)``, event ``d_c``) from the encoder's outputs
        (``[B, L, d_c]``, ``[B, L, d_c]``, ``[B, L, context_dim]``)."""
        loc, scale = loc_c.transpose(0, 1), scale_c.transpose(0, 1)
        base = dist.Normal(torch.zeros_like(loc), torch.ones_like(scale)).to_event(1)
        transforms = [self.char_spline.condition(context_c.transpose(0, 1)), AffineTransform(loc, scale, event_dim=1)]
        return dist.TransformedDistribution(base, transforms)

    def style_posterior(self, loc_s, scale_s, context_s, standardised_c) -> dist.TransformedDistribution:
        """``q(z_s | z_c, x)``: batch ``(B,)``, event ``d_s``; ``standardised_c``: ``[B, L d_c]``."""
        context = torch.cat([context_s, standardised_c], dim=-1)
        base = dist.Normal(torch.zeros_like(loc_s), torch.ones_like(scale_s)).to_event(1)
        transforms = [flow.condition(context) for flow in self.style_flows]
        return dist.TransformedDistribution(base, transforms + [AffineTransform(loc_s, scale_s, event_dim=1)])

    def sample_latents(self, x, labels):
        loc_c, scale_c, context_c, loc_s, scale_s, context_s = self._params(x)
        with labels:
            z_c = pyro.sample(sites.Z_C, self.characteristic_posterior(loc_c, scale_c, context_c))
        standardised = ((z_c.transpose(0, 1) - loc_c) / scale_c).flatten(-2)
        pyro.sample(sites.Z_S, self.style_posterior(loc_s, scale_s, context_s, standardised))
        return z_c

    def mean(self, x):
        """The image of the base distribution's centre (``eps = 0``) under the flows: for ``z_c``
        exactly each dim's posterior median (the spline is monotone and elementwise), for ``z_s``
        the matching central point. ``[B, L, d_c]``, ``[B, d_s]``; no closed-form mean exists."""
        loc_c, scale_c, context_c, loc_s, scale_s, context_s = self._params(x)
        q_c = self.characteristic_posterior(loc_c, scale_c, context_c)
        z_c = _push(q_c, torch.zeros_like(loc_c.transpose(0, 1))).transpose(0, 1)
        standardised = ((z_c - loc_c) / scale_c).flatten(-2)
        z_s = _push(self.style_posterior(loc_s, scale_s, context_s, standardised), torch.zeros_like(loc_s))
        return z_c, z_s


def _push(flow: dist.TransformedDistribution, base_value: torch.Tensor) -> torch.Tensor:
    """``base_value`` through the transforms of ``flow``."""
    for transform in flow.transforms:
        base_value = transform(base_value)
    return base_value
