"""Categorical labels as every baseline family sees them (binary is the 2-class case).

A run's label spec is ``info["num_classes"]``: label ``i`` has ``K_i`` classes (runs written
before categorical labels lack it: every label is binary). Labels come as class indices
``[B, L]`` (floats) with a bool mask ``[B, L]`` (``True`` where seen); per-label class
probabilities as ``[..., B, L, K]`` with ``K = max K_i``, the classes a label lacks at 0.

Labels of different ``K_i`` share a labels plate by padding their logits up to ``K`` with
:data:`PAD_LOGIT`, a large *finite* negative number: its probability underflows to exactly 0, and
unlike ``-inf`` it keeps ``0 * log q`` at 0 where an ELBO enumerates a padded class (``0 * inf``
is NaN).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

#: the logit of a class that a label lacks (``exp`` is exactly 0 in float32 and float64).
PAD_LOGIT = -1e4
#: class frequencies of ``p(y)`` are kept at least this far from 0 (a class absent from the
#: labelled subset would otherwise make ``log p(y)`` infinite).
MIN_FREQUENCY = 1e-3


def class_mask(num_classes: Sequence[int], device=None) -> torch.Tensor:
    """``[L, K]`` bool: ``True`` where label ``i`` has class ``k``."""
    return torch.arange(max(num_classes), device=device) < torch.tensor(num_classes, device=device).unsqueeze(-1)


def fill_labels(x: torch.Tensor, y: Optional[torch.Tensor], mask: Optional[torch.Tensor], num_labels: int):
    """``(y, mask)`` as a filled ``[B, L]`` float tensor of class indices and a ``[B, L]`` bool mask.

    No ``y`` means no label is seen; ``y`` without ``mask`` means every label is seen. Unseen
    entries hold class 0, because Pyro validates the whole tensor against the support.
    """
    batch = x.shape[0]
    if y is None:
        return x.new_zeros(batch, num_labels), torch.zeros(batch, num_labels, dtype=torch.bool, device=x.device)
    if mask is None:
        mask = torch.ones(batch, num_labels, dtype=torch.bool, device=x.device)
    return torch.where(mask, y, torch.zeros_like(y)), mask


def images_or_stand_in(x: Optional[torch.Tensor], y: Optional[torch.Tensor], batch_size: Optional[int], like: torch.Tensor) -> torch.Tensor:
    """``x``, or when it is ``None`` (the model draws the images) an empty ``[B, 0]`` tensor of
    ``like``'s dtype and device standing in for it, ``B`` from ``y`` or ``batch_size``."""
    if x is not None:
        return x
    if y is None and batch_size is None:
        raise ValueError("without images x, give the labels y [B, L] or batch_size: the number of images to draw")
    return like.new_zeros(y.shape[0] if y is not None else batch_size, 0)


def one_hot(y: torch.Tensor, max_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Class indices ``[..., L]`` (floats or ints) -> one-hot vectors ``[..., L, K]``."""
    return torch.nn.functional.one_hot(y.long(), max_classes).to(dtype)


def with_one_hot(z: torch.Tensor, label: int, value: torch.Tensor) -> torch.Tensor:
    """A copy of label vectors ``z [..., L, K]`` with label ``label``'s set to the one-hot of
    class ``value`` (one class, or one per vector ``[...]``)."""
    out = z.clone()
    out[..., label, :] = one_hot(value.expand(z.shape[:-2]), z.shape[-1], z.dtype)
    return out


def padded_log_probs(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Normalised log-probabilities ``[..., L, K]`` of ``logits [..., L, K]``, the classes a
    label lacks (``valid [L, K]`` False) at :data:`PAD_LOGIT`."""
    return torch.where(valid, logits, logits.new_tensor(PAD_LOGIT)).log_softmax(-1)


def class_frequencies(labels: torch.Tensor, mask: torch.Tensor, num_classes: Sequence[int]) -> torch.Tensor:
    """``p(y_i = k)`` ``[L, K]``: the frequency of class ``k`` among the points where label ``i``
    is seen (uniform over its ``K_i`` classes if it is never seen), kept at least
    :data:`MIN_FREQUENCY` and renormalised; 0 for classes a label lacks."""
    valid = class_mask(num_classes, labels.device)
    counts = (one_hot(labels, valid.shape[-1], torch.float64) * mask.unsqueeze(-1)).sum(0)  # [L, K]
    counts = torch.where(counts.sum(-1, keepdim=True) > 0, counts, torch.ones_like(counts)) * valid
    freq = counts / counts.sum(-1, keepdim=True)
    freq = torch.where(valid, freq.clamp(min=MIN_FREQUENCY), torch.zeros_like(freq))
    return freq / freq.sum(-1, keepdim=True)


def initial_class_locations(num_classes: Sequence[int], z_char_dim: int) -> torch.Tensor:
    """Starting locations ``[L, K, d_c]`` of the class-conditional priors: ``K_i`` points spread
    evenly over ``[-2, 2]`` on every dimension (binary: -2 and +2, as in the CCVAE's code), so
    that the classes start apart; unused padded classes sit at 0."""
    max_classes = max(num_classes)
    loc = torch.zeros(len(num_classes), max_classes, z_char_dim)
    for i, k in enumerate(num_classes):
        loc[i, :k] = torch.linspace(-2.0, 2.0, k).unsqueeze(-1)
    return loc


class ConditionalPrior(PyroModule):
    """``p_psi(z_c^i | y_i = k) = Normal(mu^{i,k}, sigma^{i,k})``: one learnable location and
    positive scale per label and class (docs/objective.md, Categorical labels).

    Locations start at :func:`initial_class_locations`, scales at 1.
    """

    def __init__(self, num_classes: Sequence[int], z_char_dim: int):
        super().__init__()
        self.loc = torch.nn.Parameter(initial_class_locations(num_classes, z_char_dim))  # [L, K, d_c]
        self.scale = PyroParam(torch.ones(len(num_classes), max(num_classes), z_char_dim), constraint=constraints.positive)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class indices ``y [..., L, B]`` (plate layout; enumerated values broadcast) -> ``loc,
        scale [..., L, B, d_c]``."""
        num_labels = self.loc.shape[0]
        label = torch.arange(num_labels, device=y.device).unsqueeze(-1)  # [L, 1]
        label, k = torch.broadcast_tensors(label, y.long())
        return self.loc[label, k], self.scale[label, k]


class DiagonalClassifier(torch.nn.Module):
    """``q_varphi(y_i | z_c^i) = Categorical(logits = W_i z_c^i + b_i)``: label ``i`` reads only its
    own block and has ``K_i`` logits (padded to ``K`` with :data:`PAD_LOGIT`).

    It starts as the Bayes classifier of the conditional prior's starting point (unit scales):
    ``logit_k = mu_k . z - |mu_k|^2 / 2``.
    """

    def __init__(self, num_classes: Sequence[int], z_char_dim: int):
        super().__init__()
        loc = initial_class_locations(num_classes, z_char_dim)
        self.weight = torch.nn.Parameter(loc.clone())  # [L, K, d_c]
        self.bias = torch.nn.Parameter(-0.5 * loc.pow(2).sum(-1))  # [L, K]
        self.register_buffer("valid", class_mask(num_classes), persistent=False)

    def forward(self, z_c: torch.Tensor) -> torch.Tensor:
        """``z_c [..., L, B, d_c]`` (plate layout) -> normalised log-probabilities ``[..., L, B, K]``."""
        logits = torch.einsum("...lbd,lkd->...lbk", z_c, self.weight) + self.bias.unsqueeze(1)
        return padded_log_probs(logits, self.valid.unsqueeze(1))
