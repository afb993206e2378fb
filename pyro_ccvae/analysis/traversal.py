"""Latent traversals of the characteristic blocks (the paper's Fig. 3).

A traversal of label ``i`` walks ``z_c^i`` along the straight line through the conditional-prior
means ``mu^i(y=0)`` and ``mu^i(y=1)``, from ``extend`` prior standard deviations (measured along
the line) before the ``y = 0`` mean to ``extend`` after the ``y = 1`` mean, keeping the rest of
``z`` at an image's posterior mean. With ``extend = 0`` the first and last steps are exactly the
two means, which the tests check.
"""
from __future__ import annotations

import torch

from ..models.base import DECODE, ENCODE, TRAVERSE, Representation

#: the capabilities traversals ask of a model.
NEEDS = (ENCODE, TRAVERSE, DECODE)


def traversal_values(representation: Representation, label: int, steps: int, extend: float = 1.0) -> torch.Tensor:
    """The ``steps`` values ``[S, d_c]`` of ``z_c^label`` for a traversal (see the module doc)."""
    if steps < 2:
        raise ValueError(f"--steps must be at least 2, got {steps}")
    if extend < 0:
        raise ValueError(f"--extend must be non-negative, got {extend}")
    loc, scale = representation.class_prior(label)  # [K, d_c]
    with torch.no_grad():
        loc0, loc1 = loc[0], loc[1]
        scale0, scale1 = scale[0], scale[1]
        gap = loc1 - loc0
        norm = gap.norm()
        # A degenerate prior (equal means) still gets a direction: the diagonal.
        unit = gap / norm if norm > 1e-8 else torch.full_like(gap, gap.numel() ** -0.5)
        start = loc0 - extend * (unit * scale0).norm() * unit
        end = loc1 + extend * (unit * scale1).norm() * unit
        t = torch.linspace(0, 1, steps, device=loc0.device).unsqueeze(-1)
        return start + t * (end - start)


@torch.no_grad()
def traverse(representation: Representation, z_c: torch.Tensor, z_s: torch.Tensor, label: int, values: torch.Tensor) -> torch.Tensor:
    """Decode images ``[B, S, C, H, W]``: ``z_c [B, L, d_c]`` with block ``label`` set to each of
    ``values [S, d_c]`` in turn, ``z_s [B, d_s]`` fixed."""
    batch, steps = z_c.shape[0], values.shape[0]
    z = z_c.unsqueeze(1).repeat(1, steps, 1, 1)  # [B, S, L, d_c]
    z[:, :, label] = values
    return representation.decode(z, z_s.unsqueeze(1).expand(batch, steps, -1))


@torch.no_grad()
def traverse_pair(
    representation: Representation, z_c: torch.Tensor, z_s: torch.Tensor, labels: tuple[int, int], values: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """A 2-D traversal of one image (``z_c [L, d_c]``, ``z_s [d_s]``): rows walk ``labels[0]``
    through ``values[0] [S0, d_c]``, columns ``labels[1]`` through ``values[1] [S1, d_c]``.
    Returns ``[S0, S1, C, H, W]``."""
    (a, b), (va, vb) = labels, values
    z = z_c.expand(va.shape[0], vb.shape[0], *z_c.shape).clone()
    z[:, :, a] = va.unsqueeze(1)
    z[:, :, b] = vb.unsqueeze(0)
    return representation.decode(z, z_s.expand(va.shape[0], vb.shape[0], -1))


def most_visible(reconstructions: torch.Tensor) -> int:
    """The index of the image ``[N, C, H, W]`` that differs most from its own median colour (mean
    absolute difference): the one where a traversal has an object to change, not a blank background."""
    median = reconstructions.flatten(-2).median(-1).values[..., None, None]  # per image and channel
    return int((reconstructions - median).abs().mean((-3, -2, -1)).argmax())
