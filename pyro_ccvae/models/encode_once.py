"""Importance-weighted bounds: K samples per image from any guide, its networks seeing each image once.

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
from typing import Callable, Iterator, Sequence

import torch
from pyro import poutine
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


#: most images (samples x batch) pushed through the networks at once.
MAX_ROWS = 1024


@torch.no_grad()
def importance_log_weights(
    model, guide, x: torch.Tensor, num_samples: int, y: torch.Tensor, mask: torch.Tensor,
    sites, log_q: Callable, log_prior_characteristic: Callable, hide: Sequence[str] = (),
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Log importance weights ``[K, B]`` of ``log p(x)`` and of ``log p(x, y_o)`` for a family
    with characteristic latents (the CCVAE, DIVA), ``z ~ q(z | x)`` from the traced guide (any
    guide, encoded once per image) and the densities of the model replayed on it::

        log w(x)      = log p(x|z) + log p(z_s) + sum_i log sum_k p(y_i = k) p(z_c^i | k) - log q(z|x)
        log w(x, y_o) = the same with p(y_i) p(z_c^i | y_i) for the seen labels

    :param y, mask: labels ``[B, L]`` (class indices) and where they are seen.
    :param sites: the family's site names (``X``, ``Z_S``, ``Z_C``).
    :param log_q: ``(guide_trace, rows) -> log q(z | x) [rows]``.
    :param log_prior_characteristic: ``z_c [L, N, d_c] -> log p(y_i = k) + log p(z_c^i | k) [K, L, N]``.
    :param hide: guide sites left out of the trace (e.g. an auxiliary factor).
    """
    batch = x.shape[0]
    y_plate, seen = y.T.long(), mask.T  # [L, B]
    log_w_x, log_w_xy = [], []
    per_pass = max(1, MAX_ROWS // batch)
    for start in range(0, num_samples, per_pass):
        k = min(per_pass, num_samples - start)
        with repeated_batch(guide, x, k) as x_k, poutine.block(hide=list(hide)):
            guide_trace = poutine.trace(guide).get_trace(x_k)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x_k)

        def log_prob(trace, name):
            site = trace.nodes[name]
            return site["fn"].log_prob(site["value"])

        log_common = log_prob(model_trace, sites.X) + log_prob(model_trace, sites.Z_S) - log_q(guide_trace, k * batch)  # [kB]
        log_prior = log_prior_characteristic(guide_trace.nodes[sites.Z_C]["value"])  # [K, L, kB]
        marginal = log_prior.logsumexp(0)  # [L, kB]
        given = log_prior.gather(0, y_plate.repeat(1, k).unsqueeze(0)).squeeze(0)
        joint = torch.where(seen.repeat(1, k), given, marginal)
        log_w_x.append((log_common + marginal.sum(0)).reshape(k, batch))
        log_w_xy.append((log_common + joint.sum(0)).reshape(k, batch))
    return torch.cat(log_w_x), torch.cat(log_w_xy)
