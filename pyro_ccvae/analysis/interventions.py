"""Interventions on one characteristic block (the paper's Figs. 5 and 11, appendix D.1).

To *switch* label ``i`` of an image: keep its posterior mean ``z``, replace ``z_c^i`` by a
draw from (or the mean of) ``p(z_c^i | y_i switched)``, and decode. "Switched" is relative to
:attr:`Analysis.current_labels`: the observed label where seen, else the guide's prediction.

- :func:`switch_grid`: original, reconstruction, and one switch per label (Fig. 11).
- :func:`diversity_maps`: per-pixel variance over many switched draws (Fig. 5).
- :func:`single_interventions`: with an independent classifier, the ``L x L`` matrix of mean
  absolute changes of its log-probabilities (rows: the label switched, columns: the label read)
  with its condition number, and how often exactly the intended label flips and no other.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..models.base import DECODE, ENCODE, INTERVENE, PREDICT, Representation
from .context import Analysis

#: the capabilities interventions ask of a model.
NEEDS = (ENCODE, PREDICT, INTERVENE, DECODE)
from .metrics import condition_number, reference_log_probs


def switched(representation: Representation, z_c: torch.Tensor, current: torch.Tensor, label: int, sample: bool = True) -> torch.Tensor:
    """``z_c [..., B, L, d_c]`` with block ``label`` drawn from ``p(z_c^label | 1 - current)``
    (its mean if not ``sample``); ``current [B, L]`` 0/1 labels (binary: the other class)."""
    return representation.intervene(z_c, label, 1 - current[..., label], sample)


@torch.no_grad()
def switch_grid(analysis: Analysis, labels: Sequence[int], count: int) -> torch.Tensor:
    """``[B, 2 + len(labels), C, H, W]``: each of the first ``count`` images, its reconstruction,
    and the image decoded with each label in ``labels`` switched (one draw each)."""
    index = torch.arange(min(count, len(analysis)))
    z_c, z_s = (z[index.to(analysis.device)] for z in analysis.posterior_means)
    current = analysis.current_labels[index.to(analysis.device)]
    rep = analysis.representation
    columns = [analysis.images(index), rep.decode(z_c, z_s)]
    columns += [rep.decode(switched(rep, z_c, current, i), z_s) for i in labels]
    return torch.stack(columns, dim=1)


@torch.no_grad()
def diversity_maps(
    analysis: Analysis, labels: Sequence[int], count: int, samples: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel variance (mean over channels) of the decoded image over ``samples`` draws of
    each switched ``z_c^i``: maps ``[B, len(labels), H, W]`` and reconstructions ``[B, C, H, W]``."""
    if samples < 2:
        raise ValueError(f"--samples must be at least 2 for a variance, got {samples}")
    index = torch.arange(min(count, len(analysis)))
    z_c, z_s = (z[index.to(analysis.device)] for z in analysis.posterior_means)
    current = analysis.current_labels[index.to(analysis.device)]
    rep = analysis.representation
    maps = []
    for i in labels:
        z = switched(rep, z_c.expand(samples, *z_c.shape), current, i)  # [S, B, L, d_c]
        decoded = rep.decode(z, z_s.expand(samples, *z_s.shape))  # [S, B, C, H, W]
        maps.append(decoded.var(0).mean(1))
    return torch.stack(maps, dim=1), rep.decode(z_c, z_s)


@torch.no_grad()
def single_interventions(analysis: Analysis) -> dict:
    """With the independent classifier ``C``: for every image, set ``z_c^i`` to the switched
    class's prior mean, and compare ``C`` on that image with ``C`` on the reconstruction.

    - ``matrix[i][j]``: mean over images of ``|log C(y_j = r_j | switched i) - log C(y_j = r_j |
      reconstruction)|``, ``r`` the classifier's decisions on the reconstruction. Ideal: a large
      diagonal and zeros elsewhere; its ``condition_number`` is then near 1.
    - ``exact_rate[i]``: the fraction of images where switching ``i`` flips ``C``'s decision on
      ``i`` and on no other label; ``intended_rate[i]`` only asks that ``i`` flips;
      ``others_flipped[i]``: the mean fraction of the other labels that flip.
    - ``target_rate[i]`` (where every label of the image is seen): ``C``'s decisions on the
      switched image equal the true labels with ``i`` switched (this also charges reconstruction
      errors).
    """
    reader = analysis.require_classifier("the single-intervention matrix")
    rep, num_labels = analysis.representation, analysis.num_labels
    z_c_all, z_s_all = analysis.posterior_means
    effect = torch.zeros(num_labels, num_labels, dtype=torch.float64)
    flips = torch.zeros(num_labels, num_labels, dtype=torch.float64)
    exact = torch.zeros(num_labels, dtype=torch.float64)
    target_hits, target_count = torch.zeros(num_labels, dtype=torch.float64), 0
    for index in analysis.index_batches("single interventions"):
        where = index.to(analysis.device)
        z_c, z_s, current = z_c_all[where], z_s_all[where], analysis.current_labels[where]
        labels, mask = analysis.labels(index)
        complete = mask.all(-1)
        target_count += int(complete.sum())
        logits_ref = reader.logits(rep.decode(z_c, z_s))
        decision = (logits_ref > 0).float()
        log_ref = reference_log_probs(logits_ref, decision)
        for i in range(num_labels):
            logits = reader.logits(rep.decode(switched(rep, z_c, current, i, sample=False), z_s))
            effect[i] += (reference_log_probs(logits, decision) - log_ref).abs().sum(0).double().cpu()
            flipped = (logits > 0).float() != decision  # [B, L]
            flips[i] += flipped.sum(0).double().cpu()
            others = torch.cat([flipped[:, :i], flipped[:, i + 1 :]], dim=1).any(-1)
            exact[i] += float((flipped[:, i] & ~others).sum())
            target = labels.clone()
            target[:, i] = 1 - target[:, i]
            hit = ((logits > 0).float() == target).all(-1) & complete
            target_hits[i] += float(hit.sum())
    n = len(analysis)
    effect, flips, exact = effect / n, flips / n, exact / n
    names = analysis.label_names
    off = ~torch.eye(num_labels, dtype=torch.bool)
    others_flipped = (flips * off).sum(1) / max(num_labels - 1, 1)
    return {
        "labels": names,
        "matrix": effect.tolist(),
        "condition_number": condition_number(effect.numpy()),
        "diagonal_mean": float(effect.diagonal().mean()),
        "off_diagonal_mean": float(effect[off].mean()) if num_labels > 1 else None,
        "exact_rate": dict(zip(names, exact.tolist())),
        "exact_rate_mean": float(exact.mean()),
        "intended_rate": dict(zip(names, flips.diagonal().tolist())),
        "others_flipped": dict(zip(names, others_flipped.tolist())),
        "target_rate": dict(zip(names, (target_hits / target_count).tolist())) if target_count else None,
        "num_images": n,
    }


def matrix_array(result: dict) -> np.ndarray:
    """The ``matrix`` of a :func:`single_interventions` result as an array."""
    return np.asarray(result["matrix"], dtype=np.float64)


def mean_variance(maps: torch.Tensor, names: Sequence[str], labels: Sequence[int]) -> dict[str, Optional[float]]:
    """Per switched label, the mean per-pixel variance of its diversity maps."""
    return {names[i]: float(maps[:, k].mean()) for k, i in enumerate(labels)}
