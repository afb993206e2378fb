"""MVAE's model and product-of-experts guide (Wu & Goodman, 2018).

Generative model, one latent for every modality::

    z   ~ Normal(0, I)
    x   ~ p(x | decoder(z))                 the CCVAE's conv decoder and likelihood
    y_i ~ Categorical(softmax(G_i(z)))      a label decoder with one head per label

Inference: a product of Gaussian experts, the prior among them, over whatever is observed::

    q(z | x, y_o) ∝ p(z) q(z | x) prod_{i in o} q(z | y_i)

with ``q(z | x)`` from the conv encoder and ``q(z | y_i = k)`` one learnable Gaussian per label
and class (a network of a one-hot input is a table). In natural parameters (``eta = mu /
sigma^2``, ``lambda = 1 / sigma^2``) the product adds: ``lambda = 1 + sum_j lambda_j``,
``mu = sum_j eta_j / lambda`` (the prior contributes ``eta = 0``, ``lambda = 1``). A label not
seen has no expert.

The objective is the sub-sampled sum ``ELBO(x, y_o) + ELBO(x) + sum_{i in o} ELBO(y_i)`` for a
point with seen labels ``o`` and ``ELBO(x)`` for one without: each term its own latent site
(:mod:`.sites`) in the model and the guide.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam
from torch.nn import functional as F

from ...likelihoods import Likelihood
from ...nets import ConvEncoder
from ..labels import class_frequencies, class_mask, fill_labels, padded_log_probs
from . import sites
from .config import MVAEConfig

#: hidden width of the label decoder.
LABEL_HIDDEN = 256


def natural(loc: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian expert's natural parameters ``(eta, lambda) = (mu / sigma^2, 1 / sigma^2)``."""
    precision = scale.pow(-2)
    return loc * precision, precision


def product_of_experts(eta: torch.Tensor, precision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``loc, scale`` of the product of ``Normal(0, I)`` (the prior expert) with experts whose
    natural parameters sum to ``eta`` and ``precision``."""
    precision = 1.0 + precision
    return eta / precision, precision.rsqrt()


class LabelDecoder(torch.nn.Module):
    """``p(y_i | z)``: a hidden layer shared by the labels and one head of ``K_i`` logits per label."""

    def __init__(self, num_classes: Sequence[int], z_dim: int):
        super().__init__()
        self.num_labels, self.max_classes = len(num_classes), max(num_classes)
        self.hidden = torch.nn.Linear(z_dim, LABEL_HIDDEN)
        self.heads = torch.nn.Linear(LABEL_HIDDEN, self.num_labels * self.max_classes)
        self.register_buffer("valid", class_mask(num_classes), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [..., d]`` -> normalised log-probabilities of every label ``[..., L, K]``."""
        logits = self.heads(F.relu(self.hidden(z)))
        return padded_log_probs(logits.reshape(*z.shape[:-1], self.num_labels, self.max_classes), self.valid)

    def own_label(self, z: torch.Tensor) -> torch.Tensor:
        """Label ``i``'s log-probabilities from ``z[..., i, :, :]``: ``z [..., L, B, d]`` -> ``[..., L, B, K]``."""
        every = self(z)  # [..., L, B, L, K]
        return torch.diagonal(every, dim1=-4, dim2=-2).movedim(-1, -3)


class MVAEModel(PyroModule):
    """``p(z) p(x | z) prod_i p(y_i | z)``, written once per ELBO term.

    :param num_classes: ``K_i`` per label; :param z_dim: dims of ``z``.
    :param likelihood: the :class:`~pyro_ccvae.likelihoods.Likelihood` of ``x``.
    :param decoder: ``[..., z_dim] -> decoder output [..., C, S, S]``.
    :param beta: the weight of every KL term (times :attr:`kl_annealing`, the warm-up's factor); :param image_weight: ``lambda_x`` of ``log p(x|z)``;
        :param label_weight: ``lambda_y`` of ``log p(y|z)`` in ``ELBO(x, y_o)``.
    """

    def __init__(
        self, num_classes: Sequence[int], z_dim: int, likelihood: Likelihood, decoder: torch.nn.Module,
        beta: float = MVAEConfig.mvae_beta, image_weight: float = MVAEConfig.mvae_image_weight,
        label_weight: float = MVAEConfig.mvae_label_weight,
    ):  # fmt: skip
        super().__init__(name="model")
        self.num_classes, self.max_classes, self.num_labels, self.z_dim = list(num_classes), max(num_classes), len(num_classes), z_dim
        self.beta, self.image_weight, self.label_weight = beta, image_weight, label_weight
        #: the KL warm-up's factor on ``beta`` (set before each training step; 1 otherwise)
        self.kl_annealing = 1.0
        self.likelihood, self.decoder = likelihood, decoder
        self.label_decoder = LabelDecoder(num_classes, z_dim)
        # MVAE's model has no p(y); generation draws labels from the labelled frequencies, as every family does.
        empty = torch.zeros(0, self.num_labels)
        self.register_buffer("label_probs", class_frequencies(empty, empty.bool(), self.num_classes).float())

    def set_label_prior(self, labels: torch.Tensor, mask: torch.Tensor) -> None:
        """The class frequencies of label ``i`` where it is seen (for generation only)."""
        self.label_probs.copy_(class_frequencies(labels, mask, self.num_classes).to(self.label_probs))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The expected image for ``z [..., d]``."""
        return self.likelihood.mean(self.decoder(z))

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        """:param x: images ``[B, C, S, S]``; :param y: class indices ``[B, L]``; :param mask: ``[B, L]`` bool."""
        y, mask = fill_labels(x, y, mask, self.num_labels)
        batch = x.shape[0]
        prior = dist.Normal(x.new_zeros(()), x.new_ones(())).expand([batch, self.z_dim]).to_event(1)
        has_label = mask.any(-1)
        with pyro.plate(sites.DATA_PLATE, batch, dim=sites.DATA_DIM):
            # ELBO(x), for every point
            with poutine.scale(scale=self.beta * self.kl_annealing):
                z_image = pyro.sample(sites.Z_IMAGE, prior)
            with poutine.scale(scale=self.image_weight):
                pyro.sample(sites.X_IMAGE, self.likelihood.distribution(self.decoder(z_image)), obs=x)
            if not bool(has_label.any()):  # an unlabelled batch has no other term (and skips a decoder pass)
                return
            labels = pyro.plate(sites.LABELS_PLATE, self.num_labels, dim=sites.LABELS_DIM)
            # ELBO(x, y_o), for the points with a seen label
            with poutine.mask(mask=has_label):
                with poutine.scale(scale=self.beta * self.kl_annealing):
                    z_joint = pyro.sample(sites.Z_JOINT, prior)
                with poutine.scale(scale=self.image_weight):
                    pyro.sample(sites.X_JOINT, self.likelihood.distribution(self.decoder(z_joint)), obs=x)
                with labels, poutine.mask(mask=mask.T), poutine.scale(scale=self.label_weight):
                    # Plates outside the model's (Predictive's) give z_joint, outside the labels plate, a size-1 labels dim.
                    z = z_joint.squeeze(-3) if z_joint.dim() > 2 else z_joint
                    log_p = self.label_decoder(z).transpose(-3, -2)  # [..., L, B, K]
                    pyro.sample(sites.Y_JOINT, dist.Categorical(logits=log_p), obs=y.T)
            # ELBO(y_i), for each seen label alone
            with labels, poutine.mask(mask=mask.T):
                with poutine.scale(scale=self.beta * self.kl_annealing):
                    z_label = pyro.sample(sites.Z_LABEL, prior.expand([self.num_labels, batch]))
                pyro.sample(sites.Y_LABEL, dist.Categorical(logits=self.label_decoder.own_label(z_label)), obs=y.T)


class MVAEGuide(PyroModule):
    """The product-of-experts posteriors of each ELBO term.

    :param beta: scales the latent sites as the model's (so each KL carries ``beta``).
    """

    def __init__(self, num_classes: Sequence[int], z_dim: int, channels: int, image_size: int, beta: float = MVAEConfig.mvae_beta):
        super().__init__(name="guide")
        self.num_classes, self.num_labels, self.max_classes, self.z_dim, self.beta = list(num_classes), len(num_classes), max(num_classes), z_dim, beta
        self.kl_annealing = 1.0  # as the model's
        self.encoder = ConvEncoder(channels, image_size, 2 * z_dim)
        # q(z | y_i = k): start as the prior (no information), learn apart.
        self.label_loc = torch.nn.Parameter(torch.zeros(self.num_labels, self.max_classes, z_dim))
        self.label_scale = PyroParam(torch.ones(self.num_labels, self.max_classes, z_dim), constraint=constraints.positive)

    def image_expert(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Natural parameters ``(eta, lambda)`` ``[B, d]`` of ``q(z | x)``'s expert."""
        loc, raw_scale = self.encoder(x).chunk(2, dim=-1)
        return natural(loc, F.softplus(raw_scale) + 1e-4)

    def label_experts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Natural parameters ``[L, K, d]`` of every label's class experts ``q(z | y_i = k)``."""
        return natural(self.label_loc, self.label_scale)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        y, mask = fill_labels(x, y, mask, self.num_labels)
        batch = x.shape[0]
        eta_x, lambda_x = self.image_expert(x)
        has_label = mask.any(-1)
        with pyro.plate(sites.DATA_PLATE, batch, dim=sites.DATA_DIM):
            with poutine.scale(scale=self.beta * self.kl_annealing):
                pyro.sample(sites.Z_IMAGE, dist.Normal(*product_of_experts(eta_x, lambda_x)).to_event(1))
            if not bool(has_label.any()):
                return
            eta, precision = self.label_experts()
            label = torch.arange(self.num_labels, device=x.device)
            seen = mask.unsqueeze(-1).to(x.dtype)  # an unseen label has no expert
            eta_y, lambda_y = eta[label, y.long()] * seen, precision[label, y.long()] * seen  # [B, L, d]
            with poutine.mask(mask=has_label), poutine.scale(scale=self.beta * self.kl_annealing):
                joint = product_of_experts(eta_x + eta_y.sum(1), lambda_x + lambda_y.sum(1))
                pyro.sample(sites.Z_JOINT, dist.Normal(*joint).to_event(1))
            with pyro.plate(sites.LABELS_PLATE, self.num_labels, dim=sites.LABELS_DIM), poutine.mask(mask=mask.T), poutine.scale(scale=self.beta * self.kl_annealing):
                single = product_of_experts(eta_y.transpose(0, 1), lambda_y.transpose(0, 1))
                pyro.sample(sites.Z_LABEL, dist.Normal(*single).to_event(1))
