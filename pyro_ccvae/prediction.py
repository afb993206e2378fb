"""Scoring predicted label probabilities against a split's seen labels (training's validation
accuracy, the independent classifier's test accuracy)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .data import ImageSet


def predicted_classes(probs: torch.Tensor) -> torch.Tensor:
    """The most probable class of each label: ``[..., L, K]`` class probabilities -> ``[..., L]``
    (ties go to the lower class, so for two classes this is ``p(y = 1) > 0.5``)."""
    return probs.argmax(-1)


def label_accuracy(probs: torch.Tensor, split: ImageSet) -> list[Optional[float]]:
    """Per-label accuracy of the most probable class on the points where the label is seen.

    :param probs: class probabilities ``[N, L, K]``, or ``p(y_i = 1)`` ``[N, L]`` for binary labels.
    """
    predicted = predicted_classes(probs) if probs.dim() == split.labels.dim() + 1 else (probs > 0.5).long()
    correct = (predicted == split.labels.long()) & split.mask
    seen = split.mask.sum(0)
    return [None if n == 0 else float(c) / float(n) for c, n in zip(correct.sum(0), seen)]


def chance_accuracy(labels: torch.Tensor, mask: torch.Tensor) -> list[Optional[float]]:
    """Per label, the accuracy of always answering the most frequent class of the seen labels
    (the frequency of that class): the floor an accuracy is read against. ``None`` where none is seen.

    :param labels: class indices ``[N, L]``; ``mask``: ``[N, L]``, true where the label is seen.
    """
    out = []
    for column, seen in zip(labels.long().T, mask.T):
        values = column[seen]
        out.append(float(values.bincount().max()) / len(values) if len(values) else None)
    return out


def mean_of(values: Sequence[Optional[float]]) -> Optional[float]:
    """The mean of the values that are not ``None`` (``None`` if there are none)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None
