"""Conditional generation from the model's prior (the paper's Fig. 4)::

    y_i ~ p(y_i)  unless fixed,   z_c ~ p(z_c | y),   z_s ~ Normal(0, I),   x = decoder(z_c, z_s)
"""
from __future__ import annotations

from typing import Optional

import torch
from tqdm.auto import tqdm

from ..models.base import DECODE, SAMPLE, Representation
from .context import Analysis


#: the capabilities generation asks of a model.
NEEDS = (SAMPLE, DECODE)


def sample_labels(representation: Representation, num: int, fixed: Optional[dict[int, int]] = None) -> torch.Tensor:
    """``[num, L]`` label vectors: ``fixed`` columns (label -> class) set, the others drawn from ``p(y)``."""
    return representation.sample_labels(num, fixed)


@torch.no_grad()
def generate(representation: Representation, y: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """Decode ``z_c ~ p(z_c | y)`` with the given ``z_s``; ``y [..., B, L]``, ``z_s [..., B, d_s]``."""
    return representation.decode(representation.sample_characteristic(y), z_s)


@torch.no_grad()
def generation_accuracy(analysis: Analysis, num_samples: int = 1000) -> dict:
    """Table 5: draw ``y ~ p(y)`` and an image from ``p(x | z) p(z | y)``; report how often the
    independent classifier recovers each ``y_i``. ``chance`` is the accuracy of always guessing
    the more likely value under ``p(y)``, for comparison."""
    reader = analysis.require_classifier("conditional-generation accuracy")
    if num_samples < 1:
        raise ValueError(f"--gen-samples must be at least 1, got {num_samples}")
    rep = analysis.representation
    correct = torch.zeros(analysis.num_labels, dtype=torch.float64)
    sizes = torch.arange(num_samples).split(analysis.batch_size)
    for chunk in tqdm(sizes, desc="generation accuracy", disable=not analysis.progress, leave=False):
        y = rep.sample_labels(len(chunk))
        x = generate(rep, y, rep.sample_style((len(chunk),)))
        correct += ((reader.logits(x) > 0).float() == y).sum(0).double().cpu()
    accuracy = correct / num_samples
    pi = rep.label_prior()[:, 1].cpu().double()
    return {
        "accuracy": dict(zip(analysis.label_names, accuracy.tolist())),
        "accuracy_mean": float(accuracy.mean()),
        "chance": dict(zip(analysis.label_names, torch.maximum(pi, 1 - pi).tolist())),
        "num_samples": num_samples,
    }
