"""M2 as analysis sees it.

M2 puts the labels themselves in the latent space, so its "characteristic part" is the label
vector: ``z_c [..., B, L, K]`` holds each label's class-probability vector (one-hot for a
chosen class; ``K = max K_i``) and ``z_s`` is M2's ``z``. Then

- ``encode(x)``: ``z_c = q(y | x)`` (the posterior mean of ``onehot(y)``) and ``z_s`` the mean
  of ``q(z | x, y)`` at ``y = z_c`` (exactly the posterior mean where ``q(y|x)`` is one-hot);
- ``classify(z_c) = z_c``; ``decode(z_c, z_s)`` feeds the vectors to the decoder as it feeds
  one-hot labels in training;
- ``intervene`` sets a label's vector to a class's one-hot (M2's "set y"), ``swap`` exchanges
  ``y`` and ``z`` between images (Kingma et al.'s analogies), and ``sample_characteristic(y)``
  is ``onehot(y)``: ``p(z_c | y)`` is a point mass.

There is no **traverse**: between one-hot vectors M2 has no prior to walk through, only the
simplex it never trained on. No **likelihood** either (not implemented).
"""
from __future__ import annotations

import torch

from ..base import DECODE, ENCODE, INTERVENE, PREDICT, RECONSTRUCT, SAMPLE, SWAP, LabelPriorFromModel, Representation
from ..labels import one_hot, with_one_hot


class M2Representation(LabelPriorFromModel, Representation):
    """The capabilities of an M2 ``model`` (:class:`~.model.M2Model`) and ``guide`` (:class:`~.model.M2Guide`)."""

    capabilities = frozenset({ENCODE, PREDICT, DECODE, RECONSTRUCT, SAMPLE, INTERVENE, SWAP})

    def __init__(self, model, guide, label_names, num_classes, device: torch.device):
        super().__init__("m2", label_names, num_classes)
        self.model, self.guide, self.device = model, guide, torch.device(device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_c = q(y | x)`` ``[B, L, K]`` and the mean of ``q(z | x, y = z_c)`` ``[B, d_s]``."""
        h = self.guide.features(x)
        probs = self.guide.label_log_probs(h).exp()
        return probs, self.guide.z_params(h, probs)[0]

    @torch.no_grad()
    def classify(self, z_c: torch.Tensor) -> torch.Tensor:
        """The label vectors themselves, renormalised: ``[..., B, L, K]``."""
        z_c = z_c.clamp(min=0) * self.guide.valid.to(z_c)
        return z_c / z_c.sum(-1, keepdim=True).clamp(min=1e-12)

    @torch.no_grad()
    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z_c, z_s)


    def sample_characteristic(self, y: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """``onehot(y)`` for class indices ``y [..., B, L]``: ``[..., B, L, K]`` (deterministic)."""
        return one_hot(y, self.model.max_classes, self.model.label_probs.dtype).to(self.device)

    def sample_style(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``z ~ Normal(0, I)``: ``[*shape, d_s]``."""
        return torch.randn(*shape, self.model.z_dim, device=self.device)

    @torch.no_grad()
    def intervene(self, z_c: torch.Tensor, label: int, value, sample: bool = True) -> torch.Tensor:
        """``z_c`` with label ``label``'s vector set to class ``value``'s one-hot (a class, or one per image ``[B]``)."""
        return with_one_hot(z_c, label, self.checked_class(label, value, z_c))
