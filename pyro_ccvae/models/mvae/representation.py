"""MVAE as analysis sees it: its latents as experts.

The MVAE has one latent ``z`` and no characteristic part; what it can be told about an image
is which experts to multiply. So its latent pair holds the experts:

- ``z_c [..., B, L, K]``: each label's class-probability vector; label ``i`` contributes the
  geometric mixture ``prod_k q(z | y_i = k)^{z_c[i, k]}`` (natural parameters weighted by
  ``z_c``), which for a one-hot vector is the class's expert and for zeros no expert;
- ``z_s [..., B, 3 d]``: the image expert's natural parameters ``(eta_x, lambda_x)`` and a
  standard-normal noise ``eps``;
- ``decode(z_c, z_s)`` decodes ``mu + sigma * eps`` of the product of the prior and those
  experts, ``q(z | x, y)`` for the given image and labels.

Then ``encode(x)`` gives ``z_c = p(y | z)`` at the mean of ``q(z | x)`` (MVAE's classifier),
the image expert and ``eps = 0``; ``intervene`` sets a label's vector to one-hot (conditioning
on ``y_i = k``: MVAE's way to edit an image), ``swap`` decodes the experts of one image's
labels with another's image expert, and conditional generation is ``z ~ q(z | y)``
(``sample_style`` gives no image expert and a fresh ``eps``). A reconstruction therefore
conditions on the image and on its own predicted labels.

There is no **traverse** (no class-conditional prior to walk) and no **likelihood** (not
implemented).
"""
from __future__ import annotations

import torch

from ..base import DECODE, ENCODE, INTERVENE, PREDICT, RECONSTRUCT, SAMPLE, SWAP, LabelPriorFromModel, Representation
from ..labels import one_hot, with_one_hot
from .model import product_of_experts


class MVAERepresentation(LabelPriorFromModel, Representation):
    """The capabilities of an MVAE ``model`` (:class:`~.model.MVAEModel`) and ``guide`` (:class:`~.model.MVAEGuide`)."""

    capabilities = frozenset({ENCODE, PREDICT, DECODE, RECONSTRUCT, SAMPLE, INTERVENE, SWAP})
    #: ``z_s`` is the image expert, which by design carries what the image says of the labels.
    style_is_label_free = False

    def __init__(self, model, guide, label_names, num_classes, device: torch.device):
        super().__init__("mvae", label_names, num_classes)
        self.model, self.guide, self.device = model, guide, torch.device(device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_c = p(y | z)`` at the mean of ``q(z | x)`` ``[B, L, K]``; ``z_s = (eta_x, lambda_x, 0)`` ``[B, 3 d]``."""
        eta_x, lambda_x = self.guide.image_expert(x)
        loc, _ = product_of_experts(eta_x, lambda_x)
        return self.model.label_decoder(loc).exp(), torch.cat([eta_x, lambda_x, torch.zeros_like(eta_x)], dim=-1)

    @torch.no_grad()
    def classify(self, z_c: torch.Tensor) -> torch.Tensor:
        """The label vectors themselves, renormalised: ``[..., B, L, K]``."""
        z_c = z_c.clamp(min=0) * self.model.label_decoder.valid.to(z_c)
        return z_c / z_c.sum(-1, keepdim=True).clamp(min=1e-12)

    @torch.no_grad()
    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        """Decode ``mu + sigma * eps`` of ``p(z) * image expert * label experts`` (see the module doc)."""
        eta_x, lambda_x, eps = z_s.chunk(3, dim=-1)
        eta, precision = self.guide.label_experts()  # [L, K, d]
        eta_y = torch.einsum("...lk,lkd->...d", z_c, eta)
        lambda_y = torch.einsum("...lk,lkd->...d", z_c, precision)
        loc, scale = product_of_experts(eta_x + eta_y, lambda_x + lambda_y)
        return self.model.decode(loc + scale * eps)


    def sample_characteristic(self, y: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """``onehot(y)`` for class indices ``y [..., B, L]``: each label's class expert."""
        return one_hot(y, self.model.max_classes, self.model.label_probs.dtype).to(self.device)

    def sample_style(self, shape: tuple[int, ...]) -> torch.Tensor:
        """No image expert and ``eps ~ Normal(0, I)``: ``[*shape, 3 d]``, so that decoding draws ``z ~ q(z | y)``."""
        d = self.model.z_dim
        eps = torch.randn(*shape, d, device=self.device)
        return torch.cat([torch.zeros_like(eps), torch.zeros_like(eps), eps], dim=-1)

    @torch.no_grad()
    def intervene(self, z_c: torch.Tensor, label: int, value, sample: bool = True) -> torch.Tensor:
        """``z_c`` with label ``label``'s vector set to class ``value``'s one-hot (a class, or one per image ``[B]``)."""
        return with_one_hot(z_c, label, self.checked_class(label, value, z_c))
