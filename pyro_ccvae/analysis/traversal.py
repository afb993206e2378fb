"""Latent traversals of the characteristic blocks (the paper's Figs. 3 and 21).

A traversal of a binary label ``i`` walks ``z_c^i`` along the straight line through the
conditional-prior means ``mu^i(y=0)`` and ``mu^i(y=1)``, from ``extend`` prior standard
deviations (measured along the line) before the ``y = 0`` mean to ``extend`` after the ``y = 1``
mean, keeping the rest of ``z`` at an image's posterior mean. With ``extend = 0`` the first and
last steps are exactly the two means, which the tests check.

A label of ``K > 2`` classes has ``K`` means ``mu^i(y=k)`` (Fig. 21):

- :func:`class_path`: the path through them in class order, ``0 -> 1 -> ... -> K-1``, with
  ``steps`` points on each leg (both of its means included; ``extend`` does not apply);
- :func:`simplex_values` (``K = 3``): the triangle of barycentric mixes
  ``w_0 mu^i(0) + w_1 mu^i(1) + w_2 mu^i(2)``, ``w >= 0``, ``sum w = 1``, on a grid of ``steps``
  points per edge; row ``r``, column ``c <= r`` has ``w_0 = 1 - r/(steps-1)`` and
  ``w_2 = c/(steps-1)``, so the corners are the three means: top ``y=0``, bottom left ``y=1``,
  bottom right ``y=2``. With ``d_c = 1`` the three means lie on a line and the triangle folds
  onto it; it is drawn all the same (its rows then repeat values along the line).
"""
from __future__ import annotations

import torch

from ..errors import UserError
from ..models.base import DECODE, ENCODE, TRAVERSE, Representation

#: the capabilities traversals ask of a model.
NEEDS = (ENCODE, TRAVERSE, DECODE)


def _check_steps(steps: int) -> None:
    if steps < 2:
        raise UserError(f"--steps must be at least 2, got {steps}")


def traversal_values(representation: Representation, label: int, steps: int, extend: float = 1.0) -> torch.Tensor:
    """The values ``[S, d_c]`` of ``z_c^label`` for a traversal (see the module doc): ``S = steps``
    for a binary label, the :func:`class_path` (``S = (K-1)(steps-1) + 1``) for ``K > 2`` classes."""
    _check_steps(steps)
    if extend < 0:
        raise UserError(f"--extend must be non-negative, got {extend}")
    loc, scale = representation.class_prior(label)  # [K, d_c]
    if loc.shape[0] > 2:
        return class_path(loc, steps)
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


def class_legs(locs: torch.Tensor, steps: int) -> torch.Tensor:
    """``[K-1, steps, d_c]``: leg ``k`` walks from the class mean ``locs[k]`` to ``locs[k+1]``
    (``locs [K, d_c]``) in ``steps`` points, both means included."""
    _check_steps(steps)
    locs = locs.detach()
    t = torch.linspace(0, 1, steps, device=locs.device)[None, :, None]  # [1, steps, 1]
    return locs[:-1, None] + t * (locs[1:, None] - locs[:-1, None])


def class_path(locs: torch.Tensor, steps: int) -> torch.Tensor:
    """``[(K-1)(steps-1) + 1, d_c]``: the piecewise-linear path through the class means ``locs
    [K, d_c]`` in order, the :func:`class_legs` end to end; point ``k (steps-1)`` is exactly ``locs[k]``."""
    legs = class_legs(locs, steps)
    return torch.cat([legs[:, :-1].reshape(-1, legs.shape[-1]), legs[-1, -1:]])


def path_captions(name: str, num_classes: int, steps: int) -> list[str]:
    """Captions of the :func:`class_path` points: ``"digit=k"`` at the class means, blank between."""
    captions = [""] * ((num_classes - 1) * (steps - 1) + 1)
    for k in range(num_classes):
        captions[k * (steps - 1)] = f"{name}={k}"
    return captions


def simplex_weights(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Barycentric weights ``[steps, steps, 3]`` of the triangle grid (see the module doc) and the
    mask ``[steps, steps]`` of its cells (``c <= r``; the others are outside the triangle)."""
    _check_steps(steps)
    t = torch.arange(steps, dtype=torch.get_default_dtype()) / (steps - 1)
    w0 = (1 - t)[:, None].expand(steps, steps)
    w2 = t[None, :].expand(steps, steps)
    inside = torch.ones(steps, steps, dtype=torch.bool).tril()
    weights = torch.stack([w0, 1 - w0 - w2, w2], dim=-1)
    return torch.where(inside[..., None], weights, torch.zeros(())), inside


def simplex_values(representation: Representation, label: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For a label of 3 classes: the triangle's values ``[steps, steps, d_c]`` of ``z_c^label``
    (barycentric mixes of the class means) and its mask (:func:`simplex_weights`)."""
    loc, _ = representation.class_prior(label)
    if loc.shape[0] != 3:
        raise UserError(f"a barycentric triangle needs a label of 3 classes, label {label} has {loc.shape[0]}")
    weights, inside = simplex_weights(steps)
    return weights.to(loc) @ loc.detach(), inside.to(loc.device)


@torch.no_grad()
def traverse(representation: Representation, z_c: torch.Tensor, z_s: torch.Tensor, label: int, values: torch.Tensor) -> torch.Tensor:
    """Decode images ``[B, S, C, H, W]``: ``z_c [B, L, d_c]`` with block ``label`` set to each of
    ``values [S, d_c]`` in turn, ``z_s [B, d_s]`` fixed."""
    batch, steps = z_c.shape[0], values.shape[0]
    z = z_c.unsqueeze(1).repeat(1, steps, 1, 1)  # [B, S, L, d_c]
    z[:, :, label] = values
    return representation.decode(z, z_s.unsqueeze(1).expand(batch, steps, -1))


@torch.no_grad()
def traverse_simplex(
    representation: Representation, z_c: torch.Tensor, z_s: torch.Tensor, label: int, steps: int
) -> torch.Tensor:
    """The triangle of one image (``z_c [L, d_c]``, ``z_s [d_s]``) for a label of 3 classes:
    ``[steps, steps, C, H, W]``, cells outside the triangle white (1)."""
    values, inside = simplex_values(representation, label, steps)
    grid = traverse(representation, z_c.unsqueeze(0), z_s.unsqueeze(0), label, values.reshape(-1, values.shape[-1]))[0]
    grid = grid.reshape(steps, steps, *grid.shape[1:])
    return torch.where(inside.reshape(steps, steps, *[1] * (grid.dim() - 2)), grid, torch.ones_like(grid))


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
