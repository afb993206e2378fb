"""Draw K samples per image from any guide while its networks see each image once.

Importance-weighted bounds trace the guide on the batch repeated K times along the data plate,
which asks nothing of the guide but its sites. Done naively, the encoder runs on all K copies:
most of the cost of ``evaluate``'s ``log p(x)``. Inside :func:`repeated_batch`, every submodule
of the guide that is called on the repeated batch itself runs on the distinct images instead,
and its output is repeated to match; the guide's own sampling code still runs on the repeated
batch, so every guide (joint, low-rank, flow) draws its K independent samples as before.

This is exact for networks that treat the rows of a batch independently, which holds in
evaluation mode (batch norm reads its running statistics, dropout is off), so it applies only to
a guide in evaluation mode (``guide.eval()``, as loaded runs are); a module whose
output does not have one row per image falls back to running on the repeated batch.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.utils._pytree import tree_flatten, tree_map


def repeat_rows(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x [B, ...]`` repeated ``k`` times along dim 0, sample-major: row ``s * B + b`` is ``x[b]``."""
    return x.repeat(k, *([1] * (x.dim() - 1)))


@contextlib.contextmanager
def repeated_batch(guide: torch.nn.Module, x: torch.Tensor, k: int) -> Iterator[torch.Tensor]:
    """Yield ``x`` repeated ``k`` times (:func:`repeat_rows`); while inside, the submodules of
    ``guide`` called on exactly that tensor compute on ``x`` once and repeat their outputs."""
    x_k = repeat_rows(x, k)
    if k == 1 or guide.training:  # in training mode batch norm couples the rows: encode every copy
        yield x_k
        return
    patched = [m for m in guide.modules() if m is not guide and "forward" not in vars(m)]

    def once(module):
        forward = type(module).forward.__get__(module)

        def call(*args, **kwargs):
            if kwargs or len(args) != 1 or args[0] is not x_k:
                return forward(*args, **kwargs)
            out = forward(x)
            leaves, _ = tree_flatten(out)
            if not all(isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] == x.shape[0] for t in leaves):
                return forward(x_k)
            return tree_map(lambda t: repeat_rows(t, k), out)

        return call

    try:
        for module in patched:
            module.forward = once(module)
        yield x_k
    finally:
        for module in patched:
            vars(module).pop("forward", None)
