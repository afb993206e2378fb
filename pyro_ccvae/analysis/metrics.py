"""Metrics of a trained run, in the disentanglement_lib style.

Every run-level metric has the same signature, ``metric(analysis: Analysis) -> dict``, and
returns plain JSON values (``None`` where a value is undefined). The small functions below them
(accuracy, AUROC, confusion matrix, Wasserstein distances, condition number) take arrays, so
tests can give them answers known to be best and worst.

Labels are class indices; label ``i`` has ``K_i`` classes (:attr:`Analysis.num_classes`). A
binary label (``K_i = 2``) keeps the binary forms (the AUROC of class 1, one Wasserstein
distance); a label with more classes gets their multi-class generalisations (one-vs-rest AUROC
per class, a ``K_i x K_i`` matrix of distances) beside them.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix, roc_auc_score

from ..prediction import chance_accuracy
from .context import Analysis

#: the one signature of a run-level metric.
Metric = Callable[[Analysis], dict]


# --- array-level metrics ---------------------------------------------------------------------


def accuracy(probs: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """Fraction of points whose most probable class is the label; ``None`` with no points.

    :param probs: class probabilities ``[N, K]``, or ``p(y = 1)`` ``[N]`` of a binary label
        (then the prediction is ``p > 0.5``).
    :param labels: class indices ``[N]``.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    if probs.shape[0] == 0:
        return None
    if probs.ndim == 1:
        return float(np.mean((probs > 0.5) == (labels > 0.5)))
    return float(np.mean(probs.argmax(-1) == labels.astype(np.int64)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """Area under the ROC curve; ``None`` when only one class is present (it is undefined)."""
    labels = np.asarray(labels) > 0.5
    if labels.size == 0 or labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, np.asarray(scores)))


def one_vs_rest_auroc(probs: np.ndarray, labels: np.ndarray) -> list[Optional[float]]:
    """Per class ``k`` of ``probs [N, K]``: the AUROC of ``probs[:, k]`` for telling class ``k``
    (labels ``[N]``, class indices) from every other class; ``None`` for a class that is absent
    or alone (sklearn's ``roc_auc_score(multi_class="ovr", average=None)`` where it is defined)."""
    labels = np.asarray(labels).astype(np.int64)
    return [auroc(np.asarray(probs)[:, k], labels == k) for k in range(np.asarray(probs).shape[-1])]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``[K, K]`` counts: row the true class, column the predicted one (every class listed, seen or not)."""
    labels, predicted = (np.asarray(a).astype(np.int64) for a in (labels, predicted))
    if labels.size == 0:
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    return sklearn_confusion_matrix(labels, predicted, labels=np.arange(num_classes))


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """The 1-D Wasserstein-1 distance between two samples' empirical distributions."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return None
    return float(wasserstein_distance(a, b))


def wasserstein_matrix(samples: Sequence[np.ndarray]) -> list[list[Optional[float]]]:
    """Pairwise :func:`wasserstein_1d` between ``K`` samples (one per class): a symmetric
    ``K x K`` matrix, zero on the diagonal, ``None`` in the rows and columns of empty samples."""
    k = len(samples)
    matrix: list[list[Optional[float]]] = [[None] * k for _ in range(k)]
    for a in range(k):
        for b in range(a, k):
            matrix[a][b] = matrix[b][a] = wasserstein_1d(samples[a], samples[b])
    return matrix


def off_diagonal_mean(matrix: Sequence[Sequence[Optional[float]]]) -> Optional[float]:
    """The mean of a square matrix's defined off-diagonal entries (``None`` if there are none)."""
    return _mean([v for r, row in enumerate(matrix) for c, v in enumerate(row) if r != c])


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
    mean; its most probable class) per label, on the points where the label is seen, beside
    ``chance``, the frequency of the most frequent seen class. ``confusion[label]`` counts the
    points by true class (rows) and predicted class (columns). ``auroc``: a binary label's AUROC
    of ``q(y_i = 1 | x)``; for ``K_i > 2`` the mean of the one-vs-rest AUROCs of its classes,
    which ``auroc_per_class`` lists."""
    probs = analysis.predicted_probs.cpu().numpy()
    labels, mask = analysis.split.labels.numpy(), analysis.split.mask.numpy()
    chance = chance_accuracy(analysis.split.labels, analysis.split.mask)
    acc, roc, per_class, confusion, seen = {}, {}, {}, {}, {}
    for i, (name, k) in enumerate(zip(analysis.label_names, analysis.num_classes)):
        m = mask[:, i]
        p, y = probs[m, i, :k], labels[m, i].astype(np.int64)
        if k == 2:
            acc[name], roc[name] = accuracy(p[:, 1], y), auroc(p[:, 1], y)
        else:
            acc[name] = accuracy(p, y)
            per_class[name] = one_vs_rest_auroc(p, y)
            roc[name] = _mean(per_class[name])
        confusion[name] = confusion_matrix(y, p.argmax(-1), k).tolist()
        seen[name] = int(m.sum())
    out = {
        "accuracy": acc,
        "accuracy_mean": _mean(list(acc.values())),
        "chance": dict(zip(analysis.label_names, chance)),
        "auroc": roc,
        "auroc_mean": _mean(list(roc.values())),
    }
    if per_class:
        out["auroc_per_class"] = per_class
    out.update({"confusion": confusion, "seen": seen, "num_images": len(analysis)})
    return out


def latent_separation(analysis: Analysis) -> dict:
    """Per label, how far apart the classes' posterior means of ``z_c^i`` (first dimension) lie
    (seen labels only): a binary label's 1-D Wasserstein distance between ``y_i = 0`` and
    ``y_i = 1``; for ``K_i > 2`` the ``K_i x K_i`` matrix of pairwise distances between its
    classes (``wasserstein_matrix``), whose off-diagonal mean is its ``wasserstein``.

    With ``d_c > 1`` a label of ``K_i > 2`` classes also gets ``wasserstein_matrix_all_dims``,
    the sum over the dimensions of these 1-D distances (a lower bound on the ``d_c``-dimensional
    Wasserstein-1 distance under the L1 cost): class means placed around a circle can share
    their first coordinate and still be far apart.

    Large: the characteristic latent separates the classes; 0: it ignores the label.
    """
    distance, matrices, all_dims = {}, {}, {}
    dims = analysis.posterior_means[0].shape[-1]
    first = characteristic_values(analysis)
    others = [characteristic_values(analysis, d) for d in range(1, dims)]
    for i, (name, classes) in enumerate(zip(analysis.label_names, first)):
        if len(classes) == 2:
            distance[name] = wasserstein_1d(*classes)
            continue
        matrices[name] = wasserstein_matrix(classes)
        distance[name] = off_diagonal_mean(matrices[name])
        if others:
            per_dim = [matrices[name]] + [wasserstein_matrix(values[i]) for values in others]
            all_dims[name] = [[None if None in cells else sum(cells) for cells in zip(*rows)] for rows in zip(*per_dim)]
    out = {"wasserstein": distance, "wasserstein_mean": _mean(list(distance.values()))}
    if matrices:
        out["wasserstein_matrix"] = matrices
    if all_dims:
        out["wasserstein_matrix_all_dims"] = all_dims
    return out


#: a label is flagged when classifiers reading ``z_s`` alone get this far from chance to perfect.
LEAKAGE_WARNING = 0.5
#: cross-validation folds and neighbours of the probes of :func:`style_leakage`, and the most
#: images they read (a seeded subset beyond it: CelebA's 19,962 test images would take minutes).
PROBE_FOLDS, PROBE_NEIGHBOURS, PROBE_MAX_IMAGES = 5, 15, 4000


def probe_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[Optional[float], Optional[float]]:
    """Cross-validated accuracy (:data:`PROBE_FOLDS` stratified folds) of a logistic regression
    and of a :data:`PROBE_NEIGHBOURS`-nearest-neighbour classifier that read class indices
    ``labels [N]`` from ``features [N, D]``, each standardised on its training folds. ``(None,
    None)`` without features, with one class, or with a class of fewer points than folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels)
    counts = counts[counts > 0]
    if features.shape[1] == 0 or len(counts) < 2 or counts.min() < PROBE_FOLDS:
        return None, None
    folds = StratifiedKFold(PROBE_FOLDS, shuffle=True, random_state=seed)
    neighbours = min(PROBE_NEIGHBOURS, len(labels) - len(labels) // PROBE_FOLDS - 1)
    return tuple(
        float(cross_val_score(make_pipeline(StandardScaler(), probe), features, labels, cv=folds).mean())
        for probe in (LogisticRegression(max_iter=1000), KNeighborsClassifier(neighbours))
    )  # type: ignore[return-value]


def style_leakage(analysis: Analysis, seed: int = 0) -> dict:
    """How much of each label the style latent holds: per label, the accuracy of classifiers that
    read it from the posterior means of ``z_s`` alone (:func:`probe_accuracy`: ``linear_accuracy``
    and ``knn_accuracy``, seen labels only), its ``chance`` (the most frequent class's share) and
    ``leakage = (max(linear, knn) - chance) / (1 - chance)``: 0 when ``z_s`` tells nothing of the
    label, 1 when it tells it perfectly. The model's design wants 0: what ``z_s`` knows of a
    label the decoder can render from ``z_s``, so an intervention on ``z_c^i`` competes with it.
    ``leaking_labels`` lists those at :data:`LEAKAGE_WARNING` or more. At most
    :data:`PROBE_MAX_IMAGES` images are read (``num_images``), a subset drawn with ``seed``."""
    _, z_s = analysis.posterior_means
    n = len(z_s)
    keep = np.sort(np.random.default_rng(seed).permutation(n)[:PROBE_MAX_IMAGES]) if n > PROBE_MAX_IMAGES else np.arange(n)
    features = z_s.double().cpu().numpy()[keep]
    labels, mask = analysis.split.labels[keep], analysis.split.mask[keep]
    chance = dict(zip(analysis.label_names, chance_accuracy(labels, mask)))
    labels, mask = labels.long().numpy(), mask.numpy()
    linear, knn, leakage = {}, {}, {}
    for i, name in enumerate(analysis.label_names):
        seen = mask[:, i]
        linear[name], knn[name] = probe_accuracy(features[seen], labels[seen, i], seed)
        best, floor = max(linear[name] or 0.0, knn[name] or 0.0), chance[name]
        leakage[name] = None if linear[name] is None or floor is None or floor >= 1 else max(0.0, (best - floor) / (1 - floor))
    return {
        "linear_accuracy": linear,
        "knn_accuracy": knn,
        "chance": chance,
        "leakage": leakage,
        "leakage_mean": _mean(list(leakage.values())),
        "leaking_labels": [name for name, value in leakage.items() if value is not None and value >= LEAKAGE_WARNING],
        "leakage_warning": LEAKAGE_WARNING,
        "folds": PROBE_FOLDS,
        "neighbours": PROBE_NEIGHBOURS,
        "num_images": len(keep),
    }


def leakage_warning(leak: dict) -> Optional[str]:
    """The health warning for the labels :func:`style_leakage` flags (``None`` without any)."""
    if not leak["leaking_labels"]:
        return None
    listed = ", ".join(
        f"{name} ({max(leak['linear_accuracy'][name], leak['knn_accuracy'][name]):.2f}, chance {leak['chance'][name]:.2f})"
        for name in leak["leaking_labels"]
    )
    return (
        f"z_s holds label information: classifiers reading z_s alone recover {listed}; an intervention on "
        f"z_c competes with what z_s holds (leakage >= {leak['leakage_warning']})"
    )


def characteristic_values(analysis: Analysis, dim: int = 0) -> list[tuple[np.ndarray, ...]]:
    """Per label ``i``, dimension ``dim`` (default the first) of the posterior mean of ``z_c^i``
    for the seen points of each class: a tuple of ``K_i`` arrays (``y_i = 0``, ``= 1``, ...)."""
    z_c = analysis.posterior_means[0][:, :, dim].cpu().numpy()
    labels, mask = analysis.split.labels.numpy().astype(np.int64), analysis.split.mask.numpy()
    return [
        tuple(z_c[mask[:, i] & (labels[:, i] == c), i] for c in range(k)) for i, k in enumerate(analysis.num_classes)
    ]


def reference_log_probs(log_probs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``log C(y_j = r_j | x)`` ``[..., L]`` from a classifier's class log-probabilities
    ``[..., L, K]`` and reference classes ``r [..., L]`` (its decisions on another image).

    The classifier-based metrics compare these on an edited image against the unedited one: how
    much the classifier's confidence in what it saw before moved.
    """
    return log_probs.gather(-1, reference.long().unsqueeze(-1)).squeeze(-1)
