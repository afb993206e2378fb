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
import time

import pyro.util
import torch

from .. import sizes
from ..errors import UserError
from ..models.base import LIKELIHOOD
from ..models.encode_once import MAX_ROWS
from .context import Analysis

#: the capabilities the likelihood estimates ask of a model.
NEEDS = (LIKELIHOOD,)
#: samples x images above which :func:`check_cost` times the estimate before it starts (below,
#: it takes minutes at most on a CPU, and timing it would cost a noticeable share).
TIMED_ABOVE_ROWS = 200_000
#: samples x images pushed through the networks to time them: one pass of the estimate.
TIMING_ROWS = MAX_ROWS


def iwae(log_w: torch.Tensor) -> torch.Tensor:
    """``log mean_k exp(log_w[k])`` for weights ``[K, B]`` -> ``[B]``."""
    return log_w.logsumexp(0) - math.log(log_w.shape[0])


def check_cost(analysis: Analysis, num_samples: int) -> None:
    """Refuse (:class:`~pyro_ccvae.sizes.SizeError`) a ``num_samples`` whose weights cannot fit in
    memory or whose estimate would run for more than a day; warn when it runs for more than ten
    minutes (:func:`~pyro_ccvae.sizes.check_duration`). The time is measured: one pass of
    :data:`TIMING_ROWS` samples of the first images, with the random state put back afterwards,
    so the estimate itself draws what it would have drawn."""
    what = f"the importance-weighted log p(x) with --iw-samples {num_samples} over {len(analysis)} test images"
    lower = "--iw-samples (or --max-images)"
    batch = min(analysis.batch_size, len(analysis))
    info = analysis.run.config.data.info
    # the [K, B] weights of log p(x) and log p(x, y) of a batch, and one pass's decoding
    weights = 2 * num_samples * batch * sizes.FLOAT_BYTES
    sizes.require(weights + sizes.decoded_bytes(MAX_ROWS, info["channels"], info["image_size"]), what, lower, analysis.device)
    rows = num_samples * len(analysis)
    if rows <= TIMED_ABOVE_ROWS:
        return
    index = torch.arange(min(len(analysis), 32))
    x = analysis.images(index)
    y, mask = analysis.labels(index)
    k = max(1, TIMING_ROWS // len(index))
    state = pyro.util.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if analysis.device.type == "cuda" else None
    try:
        with torch.no_grad():
            analysis.representation.log_weights(x, 1, y, mask)  # the first pass pays for one-off set-up
            if analysis.device.type == "cuda":
                torch.cuda.synchronize(analysis.device)
            started = time.perf_counter()
            analysis.representation.log_weights(x, k, y, mask)
            if analysis.device.type == "cuda":
                torch.cuda.synchronize(analysis.device)
            seconds_per_row = (time.perf_counter() - started) / (k * len(index))
    finally:
        pyro.util.set_rng_state(state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
    sizes.check_duration(seconds_per_row * rows, what, lower)


def importance_weighted(analysis: Analysis, num_samples: int = 100) -> dict:
    """The importance-weighted bound (``num_samples`` samples) and the ELBO, in nats per image
    and bits per dimension, for ``log p(x)`` and for ``log p(x, y_o)`` on images with a seen
    label; and the CCVAE objective with no label seen (eq. 5, a looser bound on ``log p(x)``).

    The supervised CCVAE objective is left out on purpose: its one-sample estimate multiplies a
    ``log p(x|z)`` of thousands of nats by the weight ``w(z)``, so it scatters by hundreds of nats
    from sample to sample and can land above ``log p(x, y)``."""
    if num_samples < 1:
        raise UserError(f"--iw-samples must be at least 1, got {num_samples}")
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
