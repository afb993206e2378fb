"""Health checks of a trained model of any family: does it reconstruct, use its latents, know its own prior?

Training (at the end, on the validation split) and ``evaluate`` (on its split) both call
:func:`check_health`; it lives here so that neither imports the other. It uses only the
representation's capabilities (:data:`NEEDS`: ``encode`` and ``decode``; prior recognition
also :data:`RECOGNITION_NEEDS`, and is ``None`` for a model without them, such as M2), so it
works for every guide and every model family that offers them.

Three measures, each with a warning when it fails (thresholds are the constants below):

- **reconstruction**: the mean absolute error per pixel (images in ``[0, 1]``) of the decoded
  posterior means (``model_mae``) against that of the mean training image (``mean_image_mae``).
  A decoder that ignores ``z`` can do no better than that constant image: ``ratio`` near 1 (or
  reconstructions that hardly vary between images, ``spread_ratio`` near 0) means it collapsed.
- **latent use**: active units (Burda et al., 2016): a posterior-mean dimension is active when
  its variance over the split exceeds :data:`ACTIVE_VARIANCE`; and the decoder's sensitivity to
  each block: the mean absolute pixel change when ``z_s`` (resp. ``z_c``) is swapped between
  random pairs of images. No active ``z_s`` unit, or a ``z_s`` swap below :data:`SWAP_CHANGE`,
  means ``z_s`` is unused.
- **prior recognition**: per label and class ``k``, the fraction of ``z_c^i ~ p(z_c^i | y_i = k)``
  that the model's own classifier ``q(y_i | z_c^i)`` assigns to ``k`` (``None`` for a class the
  label lacks). ``balanced`` is the mean over the label's ``K_i`` classes (``1 / K_i`` for a
  classifier that cannot tell the priors apart, whatever ``p(y)``); ``expected`` weighs them by
  ``p(y_i)``, the rate for ``y ~ p(y)``. Below
  :data:`RECOGNITION` (balanced), the labels the model generates from are not the ones it reads.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from .data import as_float_images
from .models.base import DECODE, ENCODE, PREDICT, SAMPLE, TRAVERSE

#: the capabilities the health checks ask of a model.
NEEDS = (ENCODE, DECODE)
#: what prior recognition asks besides: a class-conditional prior of ``z_c`` and a classifier of it.
RECOGNITION_NEEDS = (PREDICT, SAMPLE, TRAVERSE)

#: ``model_mae / mean_image_mae`` at or above this: the decoder does no better than the mean image.
COLLAPSE_RATIO = 0.9
#: reconstructions' per-pixel spread across images below this fraction of the images': collapsed.
COLLAPSE_SPREAD = 0.1
#: a posterior-mean dimension with a larger variance over the split is active (Burda et al.).
ACTIVE_VARIANCE = 0.01
#: a block whose swap between images changes the decoded image by less than this mean absolute
#: pixel value (``[0, 1]`` scale; about half a grey level of 255) is not used by the decoder.
SWAP_CHANGE = 0.002
#: the model's classifier must recover ``y`` from ``p(z_c | y)`` at least this often (balanced).
RECOGNITION = 0.9
#: draws of ``z_c`` per label and class for the prior-recognition rates.
PRIOR_SAMPLES = 1000


def random_partners(n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed point (for ``n >= 2``): who gives whom a latent."""
    if n < 2:
        return torch.arange(n)
    order = torch.randperm(n, generator=generator)
    partner = torch.empty(n, dtype=torch.long)
    partner[order] = order.roll(1)  # a single cycle through the shuffled order
    return partner


@torch.no_grad()
def mean_image(images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The mean of uint8 images ``[N, C, H, W]`` as floats in ``[0, 1]``: ``[C, H, W]`` (CPU).
    Small chunks: 4,096 64-px images in float64 were 400 MB, the peak of a training process."""
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    for start in range(0, len(images), batch_size):
        total += images[start : start + batch_size].double().sum(0)
    return (total / (255.0 * max(len(images), 1))).float()


@torch.no_grad()
def posterior_means(representation, images: torch.Tensor, device: torch.device, batch_size: int = 256):
    """``encode`` of uint8 images ``[N, C, H, W]``: ``z_c [N, L, d_c]``, ``z_s [N, d_s]`` on ``device``."""
    parts = [representation.encode(as_float_images(images[i : i + batch_size], device)) for i in range(0, len(images), batch_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _variances(z: torch.Tensor) -> torch.Tensor:
    """Per-dimension variance over the images (first dim) of ``z [N, ...]``; zeros for one image."""
    return z.var(0, unbiased=False).flatten().double().cpu()


@torch.no_grad()
def reconstruction_and_swaps(
    representation, images: torch.Tensor, z_c: torch.Tensor, z_s: torch.Tensor, mean: torch.Tensor,
    device: torch.device, batch_size: int = 256, generator: Optional[torch.Generator] = None,
) -> tuple[dict, dict]:  # fmt: skip
    """The reconstruction measures and the mean absolute pixel change of swapping ``z_s`` (and
    ``z_c``) between random pairs of images; see the module doc."""
    n = len(images)
    partners = random_partners(n, generator).to(device)
    mean = mean.to(device)
    sums = dict.fromkeys(["model", "mean_image", "swap_z_s", "swap_z_c"], 0.0)
    moments = {key: torch.zeros(2, *images.shape[1:], dtype=torch.float64, device=device) for key in ("recon", "data")}
    for start in range(0, n, batch_size):
        where = torch.arange(start, min(start + batch_size, n), device=device)
        x = as_float_images(images[where.cpu()], device)
        recon = representation.decode(z_c[where], z_s[where])
        sums["model"] += float((recon - x).abs().sum())
        sums["mean_image"] += float((mean - x).abs().sum())
        sums["swap_z_s"] += float((representation.decode(z_c[where], z_s[partners[where]]) - recon).abs().sum())
        sums["swap_z_c"] += float((representation.decode(z_c[partners[where]], z_s[where]) - recon).abs().sum())
        for key, value in (("recon", recon), ("data", x)):
            moments[key][0] += value.double().sum(0)
            moments[key][1] += value.double().pow(2).sum(0)
    pixels = n * math.prod(images.shape[1:])

    def spread(key):  # root of the per-pixel variance across images, averaged over pixels
        first, second = moments[key][0] / n, moments[key][1] / n
        return float((second - first.pow(2)).clamp(min=0).mean().sqrt())

    model_mae, mean_mae = sums["model"] / pixels, sums["mean_image"] / pixels
    data_spread = spread("data")
    reconstruction = {
        "model_mae": model_mae,
        "mean_image_mae": mean_mae,
        "ratio": model_mae / mean_mae if mean_mae > 0 else None,
        "spread_ratio": spread("recon") / data_spread if data_spread > 0 else None,
    }
    swaps = {"z_s": sums["swap_z_s"] / pixels, "z_c": sums["swap_z_c"] / pixels} if n >= 2 else {"z_s": None, "z_c": None}
    return reconstruction, swaps


@torch.no_grad()
def prior_recognition(representation, samples: int = PRIOR_SAMPLES, generator: Optional[torch.Generator] = None) -> dict:
    """How often the model's own classifier (``classify``) assigns ``z_c^i ~ p(z_c^i | y_i = k)``
    (from ``class_prior``) to class ``k``; see the module doc. ``given_y<k>`` holds the rate of class ``k``."""
    names = list(representation.label_names)
    num_classes = torch.tensor(representation.num_classes)
    priors = [representation.class_prior(i) for i in range(len(names))]  # per label: loc, scale [K_i, d_c]
    rates = []
    for k in range(max(representation.num_classes)):
        # a label without class k draws from its last class; its rate is dropped below
        loc = torch.stack([p[0][min(k, len(p[0]) - 1)] for p in priors]).unsqueeze(1)  # [L, 1, d_c]
        scale = torch.stack([p[1][min(k, len(p[1]) - 1)] for p in priors]).unsqueeze(1)
        noise = torch.randn(loc.shape[0], samples, loc.shape[-1], generator=generator).to(loc)
        predicted = representation.classify((loc + scale * noise).transpose(0, 1)).argmax(-1)  # [S, L]
        rates.append((predicted == k).double().mean(0).cpu())
    rates = torch.stack(rates)  # [K, L]
    has_class = torch.arange(len(rates)).unsqueeze(-1) < num_classes  # [K, L]
    rates = torch.where(has_class, rates, torch.zeros_like(rates))
    pi = representation.label_prior().double().cpu().T  # [K, L]
    out = {"balanced": dict(zip(names, (rates.sum(0) / num_classes).tolist()))}
    for k, rate in enumerate(rates):
        out[f"given_y{k}"] = {name: r if has else None for name, r, has in zip(names, rate.tolist(), has_class[k].tolist())}
    out["expected"] = dict(zip(names, (pi * rates).sum(0).tolist()))
    out["samples_per_class"] = samples
    return out


def _warnings(reconstruction: dict, latent_use: dict, recognition: dict) -> list[str]:
    out = []
    ratio, spread = reconstruction["ratio"], reconstruction["spread_ratio"]
    if ratio is not None and ratio >= COLLAPSE_RATIO:
        out.append(
            f"decoder collapsed: reconstructions are about as far from the images as the mean training image "
            f"(MAE {reconstruction['model_mae']:.4f} vs {reconstruction['mean_image_mae']:.4f}, ratio {ratio:.2f} >= {COLLAPSE_RATIO})"
        )
    elif spread is not None and spread < COLLAPSE_SPREAD:
        out.append(
            f"decoder collapsed: reconstructions hardly differ between images (their per-pixel spread is "
            f"{spread:.3f} of the images', < {COLLAPSE_SPREAD})"
        )
    z_s = latent_use["z_s"]
    if z_s["dims"] and z_s["active_units"] == 0:
        out.append(f"z_s unused: none of its {z_s['dims']} dimensions is active (posterior-mean variance > {ACTIVE_VARIANCE})")
    elif z_s["dims"] and z_s["swap_change"] is not None and z_s["swap_change"] < SWAP_CHANGE:
        out.append(
            f"z_s unused: swapping z_s between images changes the reconstruction by {z_s['swap_change']:.4f} "
            f"per pixel (< {SWAP_CHANGE})"
        )
    idle = [name for name, count in latent_use["z_c"]["active_units_per_label"].items() if count == 0]
    if idle:
        out.append(f"z_c unused for label(s) {', '.join(idle)}: no active dimension (posterior-mean variance > {ACTIVE_VARIANCE})")
    weak = {} if recognition is None else {name: rate for name, rate in recognition["balanced"].items() if rate < RECOGNITION}
    if weak:
        listed = ", ".join(f"{name} ({rate:.2f})" for name, rate in weak.items())
        out.append(
            f"prior not recognised: the model's classifier assigns samples of p(z_c|y) to y in fewer than "
            f"{RECOGNITION} of draws (balanced over the classes) for label(s) {listed}"
        )
    return out


@torch.no_grad()
def check_health(
    representation, images: torch.Tensor, train_mean: torch.Tensor, label_names: Sequence[str],
    device: torch.device, batch_size: int = 256, seed: int = 0, means: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
) -> dict:  # fmt: skip
    """Every health measure of a model (its :class:`~pyro_ccvae.models.base.Representation`) on
    uint8 ``images [N, C, H, W]`` (``N >= 1``).

    :param train_mean: the mean training image ``[C, H, W]`` in ``[0, 1]`` (see :func:`mean_image`).
    :param seed: seeds the swap partners and prior draws (a private generator: the global RNG is untouched).
    :param means: the posterior means of ``images``, if already computed.
    :return: ``reconstruction``, ``latent_use``, ``prior_recognition`` (``None`` without
        :data:`RECOGNITION_NEEDS`), ``thresholds`` and a
        ``warnings`` list of one-line strings (empty when healthy).
    """
    generator = torch.Generator().manual_seed(seed)
    representation.require("the health checks", NEEDS)
    z_c, z_s = means if means is not None else posterior_means(representation, images, device, batch_size)
    reconstruction, swaps = reconstruction_and_swaps(representation, images, z_c, z_s, train_mean, device, batch_size, generator)
    var_c, var_s = _variances(z_c), _variances(z_s)
    per_label = (var_c.reshape(len(label_names), -1) > ACTIVE_VARIANCE).sum(1).tolist()
    spread = len(images) >= 2  # one image has no variance to measure activity by

    def active(count):
        return int(count) if spread else None

    latent_use = {
        "z_c": {
            "active_units": active(sum(per_label)),
            "dims": var_c.numel(),
            "active_units_per_label": {name: active(count) for name, count in zip(label_names, per_label)},
            "variance_per_label": dict(zip(label_names, var_c.reshape(len(label_names), -1).mean(1).tolist())),
            "swap_change": swaps["z_c"],
        },
        "z_s": {
            "active_units": active((var_s > ACTIVE_VARIANCE).sum()),
            "dims": var_s.numel(),
            "variances": var_s.tolist(),
            "swap_change": swaps["z_s"],
        },
    }
    recognises = all(need in representation.capabilities for need in RECOGNITION_NEEDS)
    recognition = prior_recognition(representation, PRIOR_SAMPLES, generator) if recognises else None
    return {
        "num_images": len(images),
        "reconstruction": reconstruction,
        "latent_use": latent_use,
        "prior_recognition": recognition,
        "thresholds": {
            "collapse_ratio": COLLAPSE_RATIO,
            "collapse_spread": COLLAPSE_SPREAD,
            "active_variance": ACTIVE_VARIANCE,
            "swap_change": SWAP_CHANGE,
            "recognition": RECOGNITION,
        },
        "warnings": _warnings(reconstruction, latent_use, recognition),
    }


def describe(health: dict) -> str:
    """One line of the headline health numbers (for the CLI)."""
    rec, use = health["reconstruction"], health["latent_use"]
    recognition = health["prior_recognition"]
    rates = [] if recognition is None else [v for v in recognition["balanced"].values() if v is not None]

    def number(value):
        return "n/a" if value is None else f"{value:.3g}"

    return (
        f"reconstruction MAE {number(rec['model_mae'])} vs mean image {number(rec['mean_image_mae'])} "
        f"(ratio {number(rec['ratio'])}); active units z_c {number(use['z_c']['active_units'])}/{use['z_c']['dims']}, "
        f"z_s {number(use['z_s']['active_units'])}/{use['z_s']['dims']}; prior recognition min {number(min(rates) if rates else None)}"
    )
