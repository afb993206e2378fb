"""Scoring predicted label probabilities against a split's seen labels (training's validation
accuracy, the independent classifier's test accuracy)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .data import ImageSet


def label_accuracy(probs: torch.Tensor, split: ImageSet) -> list[Optional[float]]:
    """Per-label accuracy of ``probs > 0.5`` (``[N, L]``) on the points where the label is seen."""
    correct = ((probs > 0.5).float() == split.labels) & split.mask
    seen = split.mask.sum(0)
    return [None if n == 0 else float(c) / float(n) for c, n in zip(correct.sum(0), seen)]


def mean_of(values: Sequence[Optional[float]]) -> Optional[float]:
    """The mean of the values that are not ``None`` (``None`` if there are none)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None
