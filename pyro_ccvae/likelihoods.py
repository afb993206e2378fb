"""Observation models ``p(x | z)`` for images with pixels in ``[0, 1]``, found by name in
:data:`LIKELIHOODS` (``--likelihood NAME``).

==========================  ===================================================================
``laplace``                 ``Laplace(mean, 1)``: the paper's choice
``normal``                  ``Normal(mean, 1)``
``laplace-learned``         ``Laplace(mean, b)``, one learned scale ``b`` for every pixel
``laplace-learned-channel`` ``Laplace(mean, b_c)``, one learned scale per image channel
``normal-learned``          ``Normal(mean, sigma)``, one learned scale
``normal-learned-channel``  ``Normal(mean, sigma_c)``, one learned scale per channel
``bernoulli``               ``Bernoulli(mean)`` read as a cross-entropy on grey levels (not a
                            normalised density of continuous pixels)
``continuous-bernoulli``    ``ContinuousBernoulli(lambda)`` (Loaiza-Ganem & Cunningham, 2019):
                            a normalised density on ``[0, 1]``
==========================  ===================================================================

A unit scale on ``[0, 1]`` pixels is a weak reconstruction term: a Laplace scale of 1 costs at
most 1 nat per pixel for any error, so a decoder that outputs the median pixel (black, on MNIST)
is nearly as good as one that draws the digit. A learned scale shrinks to the typical error
and the reconstruction term sharpens with it. Learned scales are bounded below by
:data:`MIN_SCALE` (a quarter of an 8-bit grey level) so that exactly reproduced constant pixels
cannot drive the density to infinity.

Every likelihood is a :class:`torch.nn.Module` (so learned scales live in the model's state) with
``distribution(decoder_output)`` (event dims ``(C, H, W)``) and ``mean(decoder_output)``, the
image to show. The decoder's output is in ``(0, 1)``.
"""
from __future__ import annotations

from typing import Callable

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

from .errors import UserError

#: smallest learned scale: a quarter of one 8-bit grey level.
MIN_SCALE = 0.25 / 255
#: the continuous Bernoulli's parameter is kept this far from 0 and 1 (its log-normaliser diverges there).
CB_EPS = 1e-4


class Likelihood(PyroModule):
    """``p(x | decoder output)`` with event dims ``(C, H, W)``."""

    #: whether ``log_prob`` is a normalised density of continuous pixels in ``[0, 1]``.
    is_density: bool = True

    def distribution(self, out: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The image the likelihood expects for decoder output ``out`` (what figures show)."""
        return out


class LocationScale(Likelihood):
    """``family(out, scale)`` with a fixed scale, or one learned per image (``channels = 1``) or
    per channel."""

    def __init__(self, family: type, channels: int, learned: bool, per_channel: bool = False):
        super().__init__()
        self.family = family
        self.learned = learned
        shape = (channels if per_channel else 1, 1, 1)
        if learned:
            # Starts at 1 (the paper's scale) and learns down to the typical reconstruction error.
            self.scale = PyroParam(torch.ones(shape), constraint=constraints.greater_than(MIN_SCALE))
        else:
            self.register_buffer("scale", torch.ones(shape), persistent=False)

    def distribution(self, out):
        return self.family(out, self.scale.expand(out.shape[-3:])).to_event(3)


class BernoulliPixels(Likelihood):
    """Grey levels as Bernoulli probabilities: ``x log m + (1 - x) log(1 - m)``, the binary
    cross-entropy commonly used for MNIST. For non-binary ``x`` this is not a normalised density."""

    is_density = False

    def distribution(self, out):
        return dist.Bernoulli(probs=out, validate_args=False).to_event(3)


class ContinuousBernoulliPixels(Likelihood):
    """The continuous Bernoulli on ``[0, 1]``; figures show its mean, not ``lambda``."""

    def distribution(self, out):
        return dist.ContinuousBernoulli(probs=out.clamp(CB_EPS, 1 - CB_EPS)).to_event(3)

    def mean(self, out):
        return torch.distributions.ContinuousBernoulli(probs=out.clamp(CB_EPS, 1 - CB_EPS)).mean


#: name -> ``factory(channels) -> Likelihood``.
LIKELIHOODS: dict[str, Callable[[int], Likelihood]] = {
    "laplace": lambda channels: LocationScale(dist.Laplace, channels, learned=False),
    "normal": lambda channels: LocationScale(dist.Normal, channels, learned=False),
    "laplace-learned": lambda channels: LocationScale(dist.Laplace, channels, learned=True),
    "laplace-learned-channel": lambda channels: LocationScale(dist.Laplace, channels, learned=True, per_channel=True),
    "normal-learned": lambda channels: LocationScale(dist.Normal, channels, learned=True),
    "normal-learned-channel": lambda channels: LocationScale(dist.Normal, channels, learned=True, per_channel=True),
    "bernoulli": lambda channels: BernoulliPixels(),
    "continuous-bernoulli": lambda channels: ContinuousBernoulliPixels(),
}


def build_likelihood(name: str, channels: int) -> Likelihood:
    if name not in LIKELIHOODS:
        raise UserError(f"unknown likelihood {name!r}; choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name](channels)
