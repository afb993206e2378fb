"""The label spec: the labels' names and their numbers of classes (a binary label has 2, 0/1).

Plain Python, importing neither torch nor Pyro: the configuration reads a run's spec from its
``data.info`` (docs/benchmarks.md, Start-up time), and the models check theirs with it.
"""
from __future__ import annotations

from typing import Optional, Sequence


def check_num_classes(num_classes: Optional[Sequence[int]], num_labels: int) -> tuple[int, ...]:
    """The label spec's classes per label as a tuple (``None``: every label binary)."""
    if num_classes is None:
        return (2,) * num_labels
    num_classes = tuple(int(k) for k in num_classes)
    if len(num_classes) != num_labels or any(k < 2 for k in num_classes):
        raise ValueError(f"num_classes must give {num_labels} class counts of at least 2, got {num_classes}")
    return num_classes


def info_num_classes(info: dict) -> list[int]:
    """The label spec's classes per label in a run's ``data.info`` (2 each when it predates them)."""
    return [int(k) for k in info.get("num_classes") or [2] * len(info["label_names"])]
