"""Importance-weighted estimates of ``log p(x)`` and ``log p(x, y)`` (Burda et al., IWAE).

With ``z_k ~ q(z | x)`` drawn by tracing the guide (any guide)::

    log w_k(x)    = log p(x|z_k) + log p(z_s,k) + sum_i log sum_{y_i} p(y_i) p(z_c,k^i | y_i) - log q(z_k|x)
    log w_k(x, y) = the same with the seen labels' ``p(y_i) p(z_c^i | y_i)`` instead of the sum
    log p(x) >= IWAE_K = log mean_k exp(log w_k) >= ELBO = mean_k log w_k

The two bounds come from the same samples, so ``IWAE_K >= ELBO`` holds for every image, not
only on average; ``IWAE_K`` grows with ``K`` in expectation. The CCVAE objective itself (with
its Jensen-bounded ``y`` terms, eq. 5) is a looser bound on ``log p(x)`` and is reported too.

Densities are of pixel values scaled to ``[0, 1]`` (continuous), not of 8-bit pixels, so bits
per dimension are ``-log p(x) / (D log 2)`` with no discretisation term (a density of the same
pixels on the 0..255 scale is 8 bits/dim higher). They are negative when the density is sharp.
The ``bernoulli`` likelihood is a cross-entropy on grey levels, not a density of them: its
bounds are reported in nats and its bits per dimension are left out.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from pyro import poutine

from .. import sites
from ..elbo import CCVAE_ELBO
from ..model import fill_labels
from .context import Analysis

#: most images (samples x batch) pushed through the networks at once.
MAX_ROWS = 4096


def log_prior_characteristic(model, z_c: torch.Tensor) -> torch.Tensor:
    """``log p(y_i) + log p(z_c^i | y_i)`` for ``y_i = 0, 1``: ``z_c [L, N, d_c]`` -> ``[2, L, N]``."""
    y = torch.arange(2, dtype=z_c.dtype, device=z_c.device).reshape(2, 1, 1).expand(2, model.num_labels, 1)
    loc, scale = model.conditional_prior(y)  # [2, L, 1, d_c]
    log_p_z = torch.distributions.Normal(loc, scale).log_prob(z_c).sum(-1)
    pi = model.label_probs.unsqueeze(-1)  # [L, 1]
    return log_p_z + torch.stack([torch.log1p(-pi), torch.log(pi)])


@torch.no_grad()
def log_weights(
    model, guide, x: torch.Tensor, num_samples: int, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log importance weights ``[K, B]`` of ``log p(x)`` and of ``log p(x, y_o)`` for images
    ``x [B, C, H, W]`` (labels ``y [B, L]`` seen where ``mask``; none seen when ``y`` is None).

    The samples come from ``poutine.trace(guide)`` on ``x`` repeated ``k`` times along the data
    plate (vectorised without assuming anything of the guide but its sites); ``log p(x|z)`` and
    ``log p(z_s)`` come from the model replayed on them, so the model's likelihood is used.
    """
    batch = x.shape[0]
    y, mask = fill_labels(x, y, mask, model.num_labels)
    y_plate, seen = y.T.bool(), mask.T  # [L, B]
    log_w_x, log_w_xy = [], []
    per_pass = max(1, MAX_ROWS // batch)
    for start in range(0, num_samples, per_pass):
        k = min(per_pass, num_samples - start)
        x_k = x.repeat(k, *([1] * (x.dim() - 1)))  # sample-major: row s * B + b
        guide_trace = poutine.trace(guide).get_trace(x_k)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x_k)

        def log_prob(trace, name):
            site = trace.nodes[name]
            return site["fn"].log_prob(site["value"])

        z_c = guide_trace.nodes[sites.Z_C]["value"]  # [L, kB, d_c]
        log_q = log_prob(guide_trace, sites.Z_C).sum(0) + log_prob(guide_trace, sites.Z_S)
        log_common = log_prob(model_trace, sites.X) + log_prob(model_trace, sites.Z_S) - log_q  # [kB]
        log_prior = log_prior_characteristic(model, z_c)  # [2, L, kB]
        marginal = log_prior.logsumexp(0)  # [L, kB]
        given = torch.where(y_plate.repeat(1, k), log_prior[1], log_prior[0])
        joint = torch.where(seen.repeat(1, k), given, marginal)
        log_w_x.append((log_common + marginal.sum(0)).reshape(k, batch))
        log_w_xy.append((log_common + joint.sum(0)).reshape(k, batch))
    return torch.cat(log_w_x), torch.cat(log_w_xy)


def iwae(log_w: torch.Tensor) -> torch.Tensor:
    """``log mean_k exp(log_w[k])`` for weights ``[K, B]`` -> ``[B]``."""
    return log_w.logsumexp(0) - math.log(log_w.shape[0])


def importance_weighted(analysis: Analysis, num_samples: int = 100) -> dict:
    """The importance-weighted bound (``num_samples`` samples) and the ELBO, in nats per image
    and bits per dimension, for ``log p(x)`` and for ``log p(x, y_o)`` on images with a seen
    label; and the CCVAE objective with no label seen (eq. 5, a looser bound on ``log p(x)``).

    The supervised CCVAE objective is left out on purpose: its one-sample estimate multiplies a
    ``log p(x|z)`` of thousands of nats by the weight ``w(z)``, so it scatters by hundreds of nats
    from sample to sample and can land above ``log p(x, y)``."""
    if num_samples < 1:
        raise ValueError(f"--iw-samples must be at least 1, got {num_samples}")
    model, guide = analysis.model, analysis.guide
    ccvae = CCVAE_ELBO(k_samples=analysis.run.config.model.k_samples, jensen="exact")
    sums = dict.fromkeys(["iwae_x", "elbo_x", "iwae_xy", "elbo_xy", "ccvae_x"], 0.0)
    labelled = 0
    for index in analysis.index_batches(f"log p(x), K={num_samples}"):
        x = analysis.images(index)
        y, mask = analysis.labels(index)
        w_x, w_xy = log_weights(model, guide, x, num_samples, y, mask)
        has_label = mask.any(-1)
        labelled += int(has_label.sum())
        sums["iwae_x"] += float(iwae(w_x).sum())
        sums["elbo_x"] += float(w_x.mean(0).sum())
        sums["iwae_xy"] += float(iwae(w_xy)[has_label].sum())
        sums["elbo_xy"] += float(w_xy.mean(0)[has_label].sum())
        with torch.no_grad():
            sums["ccvae_x"] -= ccvae.loss(model, guide, x)
    n = len(analysis)
    dims = math.prod(analysis.split.images.shape[1:])

    def per_image(key, count):
        return sums[key] / count if count else None

    is_density = model.likelihood.is_density
    out = {
        "num_samples": num_samples, "num_images": n, "num_labelled_images": labelled, "dims": dims,
        "basis": (
            "continuous density of pixels in [0, 1], not discretised" if is_density
            else "Bernoulli cross-entropy of grey levels: not a density, no bits per dimension"
        ),
    }  # fmt: skip
    for name, key, count in [
        ("log_px_iwae", "iwae_x", n),
        ("log_px_elbo", "elbo_x", n),
        ("log_px_ccvae_elbo", "ccvae_x", n),
        ("log_pxy_iwae", "iwae_xy", labelled),
        ("log_pxy_elbo", "elbo_xy", labelled),
    ]:
        value = per_image(key, count)
        out[name] = value
        bits = None if value is None or not is_density else -value / (dims * math.log(2))
        out[name.replace("log_", "bits_per_dim_")] = bits
    return out
