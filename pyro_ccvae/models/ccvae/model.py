"""The CCVAE generative model (Joy et al., "Capturing Label Characteristics in VAEs", ICLR 2021).

Generative story, for each data point and each label ``i = 1..L``::

    y_i     ~ Categorical(pi_i)                         pi_i: class frequencies among labelled points
    z_c^i   ~ Normal(mu_psi^i(y_i), sigma_psi^i(y_i))   the conditional prior, d_c dims per label
    z_s     ~ Normal(0, I)                              style, d_s dims
    x       ~ p(x | decoder(z_c, z_s))                  Laplace(., 1) in the paper; see likelihoods.py

Label ``i`` has ``K_i`` classes (a binary label: 2, and ``Categorical`` is then the paper's
``Bernoulli``). Labels with fewer classes than ``K = max K_i`` share the labels plate: the classes
they lack have probability 0 under ``p(y_i)`` and ``q(y_i | z_c^i)``.

Sites and plates are named in :mod:`.sites`.
"""
from __future__ import annotations

import math

from typing import Optional, Sequence, Union

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

from . import sites
from ...data.label_spec import check_num_classes
from .config import PAPER
from ...likelihoods import Likelihood, build_likelihood
from ..labels import class_mask, fill_labels, images_or_stand_in, one_hot
from ...nets import ConvDecoder


def class_padding(num_classes: Sequence[int]) -> torch.Tensor:
    """``[L, K]``: 0 for the classes each label has, ``-inf`` for those it lacks (``K = max K_i``)."""
    return torch.where(class_mask(num_classes), 0.0, float("-inf"))


def merge_characteristic(z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """``z_c [..., B, L, d_c]`` and ``z_s [..., B, d_s]``, broadcast against each other -> the
    decoder's input ``[..., B, L*d_c + d_s]``."""
    z_c = z_c.flatten(-2)
    shape = torch.broadcast_shapes(z_c.shape[:-1], z_s.shape[:-1])
    return torch.cat([z_c.expand(shape + z_c.shape[-1:]), z_s.expand(shape + z_s.shape[-1:])], dim=-1)


def site_decoder_input(z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """The decoder's input from the values of the model's sites ``z_c [..., L, B, d_c]`` (labels
    plate layout) and ``z_s [..., B, d_s]``, laid out as the ``x`` site's plates: ``[B, L*d_c + d_s]``,
    or ``[..., 1, B, L*d_c + d_s]`` where plates outside the model's add the dims ``...`` (Pyro's
    ``Predictive(..., parallel=True)``; ``z_s``, outside the labels plate, then has a size-1 labels
    dim, and so must ``x``)."""
    merged = merge_characteristic(z_c.transpose(-3, -2).unsqueeze(-4), z_s)  # [..., 1, B, D]
    return merged if merged.dim() > 3 else merged.squeeze(0)


def initial_class_locations(num_classes: Sequence[int], z_char_dim: int) -> torch.Tensor:
    """Where the class means of ``p(z_c^i | y_i = k)`` start: ``[L, K, d_c]``.

    A binary label: -2 and +2 in every dim, as in the paper's code. ``K_i >= 3`` classes: 4
    apart, as the binary ones are per dim, on a line centred at 0 (``d_c = 1``) or on a circle in
    the first two dims. Classes a label lacks sit at 0 (they are never used).
    """
    locations = torch.zeros(len(num_classes), max(num_classes), z_char_dim)
    for i, k in enumerate(num_classes):
        if k == 2:
            locations[i, :2] = torch.tensor([-2.0, 2.0]).unsqueeze(-1)
        elif z_char_dim == 1:
            locations[i, :k, 0] = 4.0 * (torch.arange(k) - (k - 1) / 2)
        else:
            angle = 2 * math.pi * torch.arange(k) / k
            radius = 2.0 / math.sin(math.pi / k)  # neighbouring classes 4 apart
            locations[i, :k, 0], locations[i, :k, 1] = radius * angle.cos(), radius * angle.sin()
    return locations


class ConditionalPrior(PyroModule):
    """``p_psi(z_c^i | y_i = k)``: one learnable location and positive scale per label and class.

    Locations start at :func:`initial_class_locations`, scales at 1.
    """

    def __init__(self, num_labels: int, z_char_dim: int, num_classes: Optional[Sequence[int]] = None):
        super().__init__()
        self.num_classes = check_num_classes(num_classes, num_labels)
        self.loc = torch.nn.Parameter(initial_class_locations(self.num_classes, z_char_dim))  # [L, K, d_c]
        self.scale = PyroParam(torch.ones(num_labels, max(self.num_classes), z_char_dim), constraint=constraints.positive)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y [..., L, B]`` (class indices, plate layout) -> ``loc, scale`` of shape ``[..., L, B, d_c]``."""
        labels = torch.arange(self.loc.shape[0], device=y.device).unsqueeze(-1)  # [L, 1]
        y = y.long()
        return self.loc[labels, y], self.scale[labels, y]


class CCVAEModel(PyroModule):
    """The CCVAE model ``p(x, y, z)`` with a Higgins et al. conv decoder.

    :param num_labels: ``L``, the number of labels.
    :param channels: image channels (1 for CheXpert, 3 for CelebA).
    :param image_size: 32 or 64.
    :param z_style_dim: ``d_s``.
    :param z_char_dim: ``d_c``, latent dims per label (default: the paper's, :meth:`~.config.CCVAEConfig.paper`).
    :param likelihood: a key of :data:`pyro_ccvae.likelihoods.LIKELIHOODS`, or a
        :class:`~pyro_ccvae.likelihoods.Likelihood` to use as it is.
    :param num_classes: ``K_i`` per label (default: every label binary).
    :param decoder: the network ``z [..., L*d_c + d_s] -> decoder output [..., C, S, S]``
        (default: the Higgins et al. :class:`~pyro_ccvae.nets.ConvDecoder`).
    """

    def __init__(
        self,
        num_labels: int,
        channels: int,
        image_size: int,
        z_style_dim: int,
        z_char_dim: int = PAPER.z_char_dim,
        likelihood: Union[str, Likelihood] = PAPER.likelihood,
        decoder: Optional[torch.nn.Module] = None,
        num_classes: Optional[Sequence[int]] = None,
    ):
        super().__init__(name="model")
        self.num_labels, self.z_char_dim, self.z_style_dim = num_labels, z_char_dim, z_style_dim
        self.likelihood = build_likelihood(likelihood, channels) if isinstance(likelihood, str) else likelihood
        self.decoder = decoder if decoder is not None else ConvDecoder(num_labels * z_char_dim + z_style_dim, channels, image_size)
        self.num_classes = check_num_classes(num_classes, num_labels)
        self.conditional_prior = ConditionalPrior(num_labels, z_char_dim, self.num_classes)
        # pi [L, K]: set from the labelled training subset by :meth:`set_label_prior`.
        present = class_mask(self.num_classes)
        self.register_buffer("label_probs", present / present.sum(-1, keepdim=True))

    def set_label_prior(self, labels: torch.Tensor, mask: torch.Tensor) -> None:
        """Set ``pi_ik`` to the frequency of ``y_i = k`` among the points where label ``i`` is seen.

        A label never seen keeps the uniform ``1 / K_i``. Frequencies are clamped to at least
        ``1e-3`` (and the others shrunk to match) so ``log p(y)`` stays finite for a class that
        the labelled subset lacks.
        """
        num_classes = torch.tensor(self.num_classes, dtype=labels.dtype)
        counts = (one_hot(labels, max(self.num_classes), labels.dtype) * mask.unsqueeze(-1)).sum(0)  # [L, K]
        seen = counts.sum(-1, keepdim=True)
        present = class_mask(self.num_classes)
        uniform = present / num_classes.unsqueeze(-1)
        freq = torch.where(seen > 0, counts / seen.clamp(min=1), uniform)
        low, high = 1e-3, 1 - (num_classes.unsqueeze(-1) - 1) * 1e-3
        freq = torch.where(present, torch.minimum(freq.clamp(min=low), high), torch.zeros_like(freq))
        self.label_probs.copy_((freq / freq.sum(-1, keepdim=True)).to(self.label_probs))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs written before categorical labels stored p(y_i = 1) of binary labels as [L].
        key = prefix + "label_probs"
        value = state_dict.get(key)
        if value is not None and value.dim() == 1:
            state_dict[key] = torch.stack([1 - value, value], dim=-1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        """The expected image ``E[x | z]`` for ``z_c [..., B, L, d_c]`` and ``z_s [..., B, d_s]``."""
        return self.likelihood.mean(self.decoder(merge_characteristic(z_c, z_s)))

    def forward(
        self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
        batch_size: Optional[int] = None,
    ):  # fmt: skip
        """:param x: images ``[B, C, S, S]`` in ``[0, 1]``, or ``None`` to draw them (generation:
            ``B`` from ``y``, else ``batch_size``); :param y: labels ``[B, L]``;
        :param mask: ``[B, L]`` bool, ``True`` where a label is seen.

        Every site may be set with Pyro's handlers, e.g. images of given classes
        ``poutine.condition(model, data={"y": y.T})(batch_size=B)`` and ``poutine.do`` on ``z_c``
        (sites and their layout: :mod:`.sites`, docs/contracts.md).
        """
        like = images_or_stand_in(x, y, batch_size, self.label_probs)
        y, mask = fill_labels(like, y, mask, self.num_labels)
        batch, num_labels = y.shape
        with pyro.plate(sites.DATA_PLATE, batch, dim=sites.DATA_DIM):
            # z_s is sampled before the labels block, which keeps Pyro's dependency check quiet.
            z_s = pyro.sample(
                sites.Z_S, dist.Normal(like.new_zeros(()), like.new_ones(())).expand([batch, self.z_style_dim]).to_event(1)
            )
            with pyro.plate(sites.LABELS_PLATE, num_labels, dim=sites.LABELS_DIM):
                prior_y = dist.Categorical(probs=self.label_probs.unsqueeze(-2).expand(num_labels, batch, -1))
                y_all = pyro.sample(sites.Y, prior_y, obs=y.T, obs_mask=mask.T)
                loc, scale = self.conditional_prior(y_all)
                z_c = pyro.sample(sites.Z_C, dist.Normal(loc, scale).to_event(1))
            out = self.decoder(site_decoder_input(z_c, z_s))
            pyro.sample(sites.X, self.likelihood.distribution(out), obs=x)
