"""Importance-weighted estimates of ``log p(x)`` and ``log p(x, y)`` (Burda et al., IWAE).

With ``z_k ~ q(z | x)`` (the representation's ``log_weights``; the CCVAE traces its guide, any guide)::

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

import torch

from ..models.base import LIKELIHOOD
from .context import Analysis

#: the capabilities the likelihood estimates ask of a model.
NEEDS = (LIKELIHOOD,)


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
    rep = analysis.representation
    sums = dict.fromkeys(["iwae_x", "elbo_x", "iwae_xy", "elbo_xy", "ccvae_x"], 0.0)
    labelled = 0
    for index in analysis.index_batches(f"log p(x), K={num_samples}"):
        x = analysis.images(index)
        y, mask = analysis.labels(index)
        w_x, w_xy = rep.log_weights(x, num_samples, y, mask)
        has_label = mask.any(-1)
        labelled += int(has_label.sum())
        sums["iwae_x"] += float(iwae(w_x).sum())
        sums["elbo_x"] += float(w_x.mean(0).sum())
        sums["iwae_xy"] += float(iwae(w_xy)[has_label].sum())
        sums["elbo_xy"] += float(w_xy.mean(0)[has_label].sum())
        with torch.no_grad():
            sums["ccvae_x"] += rep.unsupervised_objective(x)
    n = len(analysis)
    dims = math.prod(analysis.split.images.shape[1:])

    def per_image(key, count):
        return sums[key] / count if count else None

    is_density = rep.likelihood_is_density
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
