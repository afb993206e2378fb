"""M2's generative model and guide (Kingma et al., 2014)::

    y_i ~ Categorical(pi_i)          pi_i: the class frequencies among labelled training points
    z   ~ Normal(0, I)               d_s dims
    x   ~ p(x | decoder(onehot(y), z))

    q(y | x) = prod_i Categorical(y_i | softmax(F_i(h(x))))       the classifier
    q(z | x, y) = Normal(mu(h(x), onehot(y)), sigma(h(x), onehot(y)))

``h`` is the Higgins et al. conv encoder (:class:`~pyro_ccvae.nets.ConvEncoder`), ``decoder``
the matching :class:`~pyro_ccvae.nets.ConvDecoder`. The decoder reads the one-hot vectors of all
labels (each padded to ``K = max K_i``), so its input has ``L K + d_s`` dims. Sites are named in
:mod:`.sites`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch.nn import functional as F

from ...likelihoods import Likelihood
from ...nets import ConvEncoder
from ..common import guess_label, observe_label, seen_pattern
from ..labels import PAD_LOGIT, class_frequencies, class_mask, fill_labels, images_or_stand_in, one_hot, padded_log_probs
from . import sites
from .config import M2Config

#: width of the encoder's features ``h(x)``, shared by ``q(y|x)`` and ``q(z|x,y)``.
FEATURES = 256


def decoder_input(y_vectors: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Label vectors ``[..., B, L, K]`` (one-hot, or class probabilities) and ``z [..., B, d]``,
    broadcast against each other -> the decoder's input ``[..., B, L K + d]``."""
    y_flat = y_vectors.flatten(-2)
    shape = torch.broadcast_shapes(y_flat.shape[:-1], z.shape[:-1])
    return torch.cat([y_flat.expand(shape + y_flat.shape[-1:]), z.expand(shape + z.shape[-1:])], dim=-1)


def stack_one_hot(values: Sequence[torch.Tensor], max_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Per-label class indices (each ``[..., B]``, enumerated ones broadcasting) -> ``[..., B, L, K]``."""
    values = torch.broadcast_tensors(*values)
    return torch.stack([one_hot(v, max_classes, dtype) for v in values], dim=-2)


class M2Model(PyroModule):
    """``p(y) p(z) p(x | y, z)``.

    :param num_classes: ``K_i`` per label.
    :param z_dim: dims of ``z``.
    :param likelihood: the :class:`~pyro_ccvae.likelihoods.Likelihood` of ``x``.
    :param decoder: ``[..., L K + z_dim] -> decoder output [..., C, S, S]``.
    :param enumerate: one site per label, for the exact sum (see :mod:`.sites`); otherwise one
        site ``y`` in a labels plate, for the sampled estimator.
    """

    def __init__(self, num_classes: Sequence[int], z_dim: int, likelihood: Likelihood, decoder: torch.nn.Module, enumerate: bool = True):
        super().__init__(name="model")
        self.num_classes, self.max_classes, self.z_dim, self.enumerate = list(num_classes), max(num_classes), z_dim, enumerate
        self.likelihood, self.decoder = likelihood, decoder
        # pi: set from the labelled training subset by :meth:`set_label_prior`.
        empty = torch.zeros(0, len(self.num_classes))
        self.register_buffer("label_probs", class_frequencies(empty, empty.bool(), self.num_classes).float())
        self.register_buffer("valid", class_mask(self.num_classes), persistent=False)

    def set_label_prior(self, labels: torch.Tensor, mask: torch.Tensor) -> None:
        """``pi_i``: the class frequencies of label ``i`` where it is seen (see :func:`~..labels.class_frequencies`)."""
        self.label_probs.copy_(class_frequencies(labels, mask, self.num_classes).to(self.label_probs))

    def decode(self, y_vectors: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The expected image for label vectors ``[..., B, L, K]`` and ``z [..., B, d]``."""
        return self.likelihood.mean(self.decoder(decoder_input(y_vectors, z)))

    def forward(
        self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
        batch_size: Optional[int] = None,
    ):  # fmt: skip
        """:param x: images ``[B, C, S, S]`` in ``[0, 1]``, or ``None`` to draw them (generation:
            ``B`` from ``y``, else ``batch_size``); :param y: class indices ``[B, L]``;
        :param mask: ``[B, L]`` bool, ``True`` where a label is seen.

        Images of given classes: ``model(None, y)``, or ``poutine.condition`` on the sites
        ``y_{i}_unobserved`` (:mod:`.sites`); ``poutine.do`` on ``z`` fixes the style.
        """
        like = images_or_stand_in(x, y, batch_size, self.label_probs)
        y, mask = fill_labels(like, y, mask, len(self.num_classes))
        batch = like.shape[0]
        with pyro.plate(sites.DATA_PLATE, batch, dim=sites.DATA_DIM):
            if self.enumerate:
                all_seen, any_seen = seen_pattern(mask)
                values = []
                for i, k in enumerate(self.num_classes):
                    prior = dist.Categorical(probs=self.label_probs[i, :k].expand(batch, k))
                    values.append(observe_label(sites.label(i), prior, y[:, i], mask[:, i], all_seen[i], any_seen[i]))
                vectors = stack_one_hot(values, self.max_classes, like.dtype)
            else:
                with labels_plate(len(self.num_classes)):
                    log_pi = padded_log_probs(self.label_probs.log(), self.valid).unsqueeze(1).expand(-1, batch, -1)
                    values = observe_label(sites.Y, dist.Categorical(logits=log_pi), y.T, mask.T, bool(mask.all()), bool(mask.any()))
                vectors = one_hot(values, self.max_classes, like.dtype).transpose(-3, -2)  # [B, L, K]
            z = pyro.sample(sites.Z, dist.Normal(like.new_zeros(()), like.new_ones(())).expand([batch, self.z_dim]).to_event(1))
            out = self.decoder(decoder_input(vectors, z))
            pyro.sample(sites.X, self.likelihood.distribution(out), obs=x)


def labels_plate(num_labels: int) -> pyro.plate:
    """The labels plate of the sampled estimator, inside the data plate (``y`` has batch shape ``(L, B)``)."""
    return pyro.plate(sites.LABELS_PLATE, num_labels, dim=sites.LABELS_DIM)


class CostBaseline(torch.nn.Module):
    """A learned baseline for the score-function estimator: each label's downstream cost
    predicted from the encoder's features (Mnih & Gregor's neural baseline; Pyro's
    ``nn_baseline``, which trains it by least squares)."""

    def __init__(self, num_labels: int):
        super().__init__()
        self.linear = torch.nn.Linear(FEATURES, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cost = self.linear(features).T  # [L, B], the labels plate's layout
        # Shaped as TraceGraph_ELBO shapes the cost it is compared with (MultiFrameTensor.sum_to
        # drops leading size-1 dims): one label and one image have a scalar cost.
        while cost.dim() and cost.shape[0] == 1:
            cost = cost.squeeze(0)
        return cost


class M2Guide(PyroModule):
    """``q(y | x) q(z | x, y)`` and the alpha-weighted classification term.

    :param enumerate: one site per label, the unseen ones marked for parallel enumeration (the
        exact sum of :class:`pyro.infer.TraceEnum_ELBO`); otherwise one site ``y`` in a labels
        plate with a learned baseline for the score-function estimator of
        :class:`pyro.infer.TraceGraph_ELBO` (one vectorised site: each extra site costs that
        ELBO's dependency tracking a noticeable share of a step).
    :param alpha: Kingma et al.'s ``alpha / N``. The guide adds the factor
        ``-alpha * B / n_i * sum_{b seen} log q(y_bi | x_b)`` per label ``i`` (``n_i`` the points of
        the batch where label ``i`` is seen): a guide factor enters an ELBO with the opposite sign,
        so the objective gains ``alpha N E_labelled[log q(y|x)]`` in expectation over batches.
    """

    def __init__(self, num_classes: Sequence[int], z_dim: int, channels: int, image_size: int, enumerate: bool = True, alpha: float = M2Config.m2_alpha):
        super().__init__(name="guide")
        self.num_classes, self.max_classes, self.z_dim = list(num_classes), max(num_classes), z_dim
        self.enumerate, self.alpha = enumerate, alpha
        num_labels = len(self.num_classes)
        self.encoder = ConvEncoder(channels, image_size, FEATURES)
        self.classifier = torch.nn.Linear(FEATURES, num_labels * self.max_classes)
        self.z_net = torch.nn.Linear(FEATURES + num_labels * self.max_classes, 2 * z_dim)
        self.register_buffer("valid", class_mask(self.num_classes), persistent=False)
        if not enumerate:
            self.baseline = CostBaseline(num_labels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``h(x)``: ``[B, FEATURES]``."""
        return F.relu(self.encoder(x))

    def label_log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """``log q(y_i = k | x)``: ``[B, L, K]``, classes a label lacks at ``log 0``'s stand-in."""
        logits = self.classifier(h).reshape(h.shape[0], len(self.num_classes), self.max_classes)
        return padded_log_probs(logits, self.valid)

    def z_params(self, h: torch.Tensor, y_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``loc, scale [..., B, d]`` of ``q(z | x, y)`` for label vectors ``[..., B, L, K]``."""
        y_flat = y_vectors.flatten(-2)
        h = h.expand(y_flat.shape[:-1] + h.shape[-1:])
        loc, raw_scale = self.z_net(torch.cat([h, y_flat], dim=-1)).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + 1e-4

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        y, mask = fill_labels(x, y, mask, len(self.num_classes))
        batch = x.shape[0]
        h = self.features(x)
        log_q = self.label_log_probs(h)  # [B, L, K]
        with pyro.plate(sites.DATA_PLATE, batch, dim=sites.DATA_DIM):
            if self.enumerate:
                all_seen, _ = seen_pattern(mask)
                values = []
                for i, k in enumerate(self.num_classes):
                    q_y = dist.Categorical(logits=log_q[:, i, :k])
                    values.append(guess_label(sites.label(i), q_y, y[:, i], mask[:, i], all_seen[i], {"enumerate": "parallel"}))
                vectors = stack_one_hot(values, self.max_classes, x.dtype)
            elif bool(mask.all()):
                vectors = one_hot(y, self.max_classes, x.dtype)
            else:
                # Seen labels are drawn from a point mass at their value rather than masked out:
                # a score-function estimator does not mask the score (Pyro's ScoreParts leave it
                # unmasked), so a masked seen label would still pick up gradient from the image's
                # cost. A point mass has log q = 0 and no parameters, hence no score.
                seen = mask.unsqueeze(-1)
                point_mass = torch.where(one_hot(y, self.max_classes, torch.bool), 0.0, PAD_LOGIT).to(log_q)
                q_y = dist.Categorical(logits=torch.where(seen, point_mass, log_q).transpose(0, 1))
                with labels_plate(len(self.num_classes)):
                    infer = {"baseline": {"nn_baseline": self.baseline, "nn_baseline_input": h}}
                    values = pyro.sample(sites.unobserved(sites.Y), q_y, infer=infer)
                vectors = one_hot(values, self.max_classes, x.dtype).transpose(-3, -2)
            if self.alpha > 0 and bool(mask.any()):
                seen = mask.to(x.dtype)
                per_label = self.alpha * batch / seen.sum(0).clamp(min=1)  # [L]
                log_q_seen = log_q.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)  # [B, L]
                pyro.factor(sites.CLASSIFICATION, -(per_label * seen * log_q_seen).sum(-1), has_rsample=True)
            loc, scale = self.z_params(h, vectors)
            pyro.sample(sites.Z, dist.Normal(loc, scale).to_event(1))
