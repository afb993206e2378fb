"""Metrics of a trained run, in the disentanglement_lib style.

Every run-level metric has the same signature, ``metric(analysis: Analysis) -> dict``, and
returns plain JSON values (``None`` where a value is undefined). The small functions below them
(accuracy, AUROC, Wasserstein distance, condition number) take arrays, so tests can give them
answers known to be best and worst.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score

from .context import Analysis

#: the one signature of a run-level metric.
Metric = Callable[[Analysis], dict]


# --- array-level metrics ---------------------------------------------------------------------


def accuracy(probs: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """Fraction of ``probs > 0.5`` that equal the 0/1 ``labels``; ``None`` with no points."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if probs.size == 0:
        return None
    return float(np.mean((probs > 0.5) == (labels > 0.5)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """Area under the ROC curve; ``None`` when only one class is present (it is undefined)."""
    labels = np.asarray(labels) > 0.5
    if labels.size == 0 or labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, np.asarray(scores)))


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """The 1-D Wasserstein-1 distance between two samples' empirical distributions."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return None
    return float(wasserstein_distance(a, b))


def condition_number(matrix: np.ndarray) -> Optional[float]:
    """The 2-norm condition number (largest over smallest singular value), ``>= 1``.

    1 for a multiple of an orthogonal matrix (e.g. an equal-effect diagonal: every intervention
    moves its own label and only it, equally); large or ``None`` (infinite) when some
    interventions' effects are (nearly) linearly dependent: they are entangled.
    """
    singular = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
    if singular.size == 0 or singular[-1] <= singular[0] * 1e-12:
        return None
    return float(singular[0] / singular[-1])


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# --- run-level metrics -----------------------------------------------------------------------


def classification(analysis: Analysis) -> dict:
    """The paper's Table 1: accuracy of ``q(y|x)`` (the diagonal classifier at the posterior
    mean) per label, on the points where the label is seen, and per-label AUROC (binary labels:
    the score is ``q(y_i = 1 | x)``)."""
    probs = analysis.predicted_probs[..., 1].cpu().numpy()
    labels, mask = analysis.split.labels.numpy(), analysis.split.mask.numpy()
    acc, roc, seen = {}, {}, {}
    for i, name in enumerate(analysis.label_names):
        m = mask[:, i]
        acc[name] = accuracy(probs[m, i], labels[m, i])
        roc[name] = auroc(probs[m, i], labels[m, i])
        seen[name] = int(m.sum())
    return {
        "accuracy": acc,
        "accuracy_mean": _mean(list(acc.values())),
        "auroc": roc,
        "auroc_mean": _mean(list(roc.values())),
        "seen": seen,
        "num_images": len(analysis),
    }


def latent_separation(analysis: Analysis) -> dict:
    """Per label, the 1-D Wasserstein distance between the posterior means of ``z_c^i`` (first
    dimension) of images with ``y_i = 0`` and with ``y_i = 1`` (seen labels only).

    Large: the characteristic latent separates the classes; 0: it ignores the label.
    """
    values = characteristic_values(analysis)
    distance = {name: wasserstein_1d(v0, v1) for name, (v0, v1) in zip(analysis.label_names, values)}
    return {"wasserstein": distance, "wasserstein_mean": _mean(list(distance.values()))}


def characteristic_values(analysis: Analysis) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per label, the first dimension of the posterior mean of ``z_c^i`` for seen ``y_i = 0`` and ``= 1``."""
    z_c = analysis.posterior_means[0][:, :, 0].cpu().numpy()
    labels, mask = analysis.split.labels.numpy() > 0.5, analysis.split.mask.numpy()
    return [
        (z_c[mask[:, i] & ~labels[:, i], i], z_c[mask[:, i] & labels[:, i], i]) for i in range(analysis.num_labels)
    ]


def mean_abs_change(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Mean over all but the last dim of ``|after - before|``: one value per label.

    Used on classifier log-probabilities: 0 when nothing changed.
    """
    return (after - before).abs().reshape(-1, before.shape[-1]).mean(0)


def reference_log_probs(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``log q(y_j = r_j | x)`` from a classifier's ``logits`` and reference decisions ``r`` (0/1).

    The classifier-based metrics compare these on an edited image against the unedited one: how
    much the classifier's confidence in what it saw before moved.
    """
    return torch.nn.functional.logsigmoid(torch.where(reference > 0.5, logits, -logits))
