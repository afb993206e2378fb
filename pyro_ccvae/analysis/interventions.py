"""Interventions on one characteristic block (the paper's Figs. 5, 11 and 22, appendix D.1).

To *intervene* on label ``i`` of an image: keep its posterior mean ``z``, replace ``z_c^i`` by a
draw from (or the mean of) ``p(z_c^i | y_i = k)``, and decode. The *current* class is
:attr:`Analysis.current_labels`: the observed label where seen, else the guide's prediction.
A binary label is *switched*: ``k`` is the other class. A label of ``K_i > 2`` classes is set to
each class ``k`` in turn; the measures below average over the targets ``k`` other than the
current class (the ``K_i - 1`` classes ``(current + offset) mod K_i``, ``offset = 1..K_i-1``; for a
binary label this is the one switch).

- :func:`switch_grid`: original, reconstruction, and one column per intervention (Fig. 11):
  a switch per binary label, a column per class for the others (:func:`intervention_columns`).
- :func:`diversity_maps`: per-pixel variance over many draws of the intervened ``z_c^i`` (Fig. 5).
- :func:`class_draws`: for each class of a label, draws ``z_c^i ~ p(z_c^i | y_i = k)`` decoded
  with one image's ``z_s`` and other blocks fixed (Fig. 22).
- :func:`single_interventions`: with an independent classifier, the ``L x L`` matrix of mean
  absolute changes of its log-probabilities (rows: the label intervened on, columns: the label
  read) with its condition number, and how often the judge reads the intended class and no
  other label changes.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import UserError
from ..models.base import DECODE, ENCODE, INTERVENE, PREDICT, Representation
from ..prediction import predicted_classes
from .context import Analysis
from .metrics import condition_number, reference_log_probs

#: the capabilities interventions ask of a model.
NEEDS = (ENCODE, PREDICT, INTERVENE, DECODE)


def target_classes(current: torch.Tensor, label: int, num_classes: int, offset: int = 1) -> torch.Tensor:
    """``(current[..., label] + offset) mod K``: the class an intervention sets label ``label``
    to (long); with ``offset`` running over ``1..K-1`` every class but the current one, and for a
    binary label (``offset = 1``) the other class."""
    return (current[..., label].long() + offset) % num_classes


def switched(
    representation: Representation, z_c: torch.Tensor, current: torch.Tensor, label: int, sample: bool = True, offset: int = 1
) -> torch.Tensor:
    """``z_c [..., B, L, d_c]`` with block ``label`` drawn from ``p(z_c^label | y_label = k)``,
    ``k`` = :func:`target_classes` of ``current [B, L]`` (its mean if not ``sample``); with the
    default ``offset`` a binary label gets the other class."""
    k = target_classes(current, label, representation.num_classes[label], offset)
    return representation.intervene(z_c, label, k.to(z_c.dtype), sample)


def intervention_columns(names: Sequence[str], num_classes: Sequence[int], labels: Sequence[int]) -> list[tuple[int, Optional[int], str]]:
    """The interventions of a switch grid: ``(label, class, caption)``, with ``class`` ``None`` for
    the switch of a binary label (``"switch red"``) and each class of the others (``"digit=3"``)."""
    columns = []
    for i in labels:
        if num_classes[i] == 2:
            columns.append((i, None, f"switch {names[i]}"))
        else:
            columns += [(i, k, f"{names[i]}={k}") for k in range(num_classes[i])]
    return columns


@torch.no_grad()
def switch_grid(analysis: Analysis, labels: Sequence[int], count: int) -> torch.Tensor:
    """``[B, 2 + len(columns), C, H, W]``: each of the first ``count`` images, its reconstruction,
    and the image decoded after each intervention of :func:`intervention_columns` (one draw each)."""
    index = torch.arange(min(count, len(analysis)))
    z_c, z_s = (z[index.to(analysis.device)] for z in analysis.posterior_means)
    current = analysis.current_labels[index.to(analysis.device)]
    rep = analysis.representation
    columns = [analysis.images(index), rep.decode(z_c, z_s)]
    for i, k, _ in intervention_columns(analysis.label_names, analysis.num_classes, labels):
        z = switched(rep, z_c, current, i) if k is None else rep.intervene(z_c, i, k)
        columns.append(rep.decode(z, z_s))
    return torch.stack(columns, dim=1)


@torch.no_grad()
def diversity_maps(
    analysis: Analysis, labels: Sequence[int], count: int, samples: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel variance (mean over channels) of the decoded image over ``samples`` draws of
    each intervened ``z_c^i`` (a binary label: switched; ``K_i > 2``: the variance for each
    target class other than the current one, averaged over those classes): maps
    ``[B, len(labels), H, W]`` and reconstructions ``[B, C, H, W]``."""
    if samples < 2:
        raise UserError(f"--samples must be at least 2 for a variance, got {samples}")
    index = torch.arange(min(count, len(analysis)))
    z_c, z_s = (z[index.to(analysis.device)] for z in analysis.posterior_means)
    current = analysis.current_labels[index.to(analysis.device)]
    rep = analysis.representation
    maps = []
    for i in labels:
        offsets = range(1, analysis.num_classes[i])
        total = 0
        for offset in offsets:
            z = switched(rep, z_c.expand(samples, *z_c.shape), current, i, offset=offset)  # [S, B, L, d_c]
            decoded = rep.decode(z, z_s.expand(samples, *z_s.shape))  # [S, B, C, H, W]
            total = total + decoded.var(0).mean(1)
        maps.append(total / len(offsets))
    return torch.stack(maps, dim=1), rep.decode(z_c, z_s)


@torch.no_grad()
def class_draws(analysis: Analysis, label: int, image: int, draws: int) -> torch.Tensor:
    """The paper's Fig. 22: ``[K, draws, C, H, W]``, row ``k`` decoding ``draws`` draws of
    ``z_c^label ~ p(z_c^label | y_label = k)`` with test image ``image``'s ``z_s`` and other
    blocks of ``z_c`` (posterior means) fixed: how much a class varies on its own."""
    if draws < 1:
        raise UserError(f"--draws must be at least 1, got {draws}")
    num = analysis.num_classes[label]
    z_c, z_s = (z[image] for z in analysis.posterior_means)
    rep = analysis.representation
    classes = torch.arange(num, device=z_c.device, dtype=z_c.dtype)
    z = rep.intervene(z_c.expand(draws, num, *z_c.shape), label, classes)  # [draws, K, L, d_c]
    return rep.decode(z, z_s.expand(draws, num, -1)).transpose(0, 1)


@torch.no_grad()
def single_interventions(analysis: Analysis) -> dict:
    """With the independent classifier ``C``: for every image, set ``z_c^i`` to a target class's
    prior mean, and compare ``C`` on that image with ``C`` on the reconstruction. ``r`` are
    ``C``'s decisions (most probable classes) on the reconstruction; a label's judged class
    *changes* when ``C``'s decision differs from ``r``. Binary labels are switched; for
    ``K_i > 2`` every value below is the mean over the target classes other than the current one.

    - ``matrix[i][j]``: mean over images of ``|log C(y_j = r_j | intervened i) - log C(y_j = r_j |
      reconstruction)|``. Ideal: a large diagonal and zeros elsewhere; its ``condition_number`` is
      then near 1.
    - ``intended_rate[i]``: the fraction of interventions after which ``C`` reads the target
      class on ``i`` (binary: ``C``'s decision on ``i`` flips); ``exact_rate[i]``: that, and no
      other label's judged class changes; ``others_flipped[i]``: the mean fraction of the other
      labels whose judged class changes. ``intended_rate_by_class[i][k]`` (``K_i > 2``): the
      intended rate of target class ``k``, over the images whose current class is not ``k``.
    - ``target_rate[i]`` (where every label of the image is seen): ``C``'s decisions on the
      intervened image equal the true labels with ``i`` set to the target (this also charges
      reconstruction errors).
    """
    reader = analysis.require_classifier("the single-intervention matrix")
    rep, num_labels, num_classes = analysis.representation, analysis.num_labels, analysis.num_classes
    z_c_all, z_s_all = analysis.posterior_means
    effect = torch.zeros(num_labels, num_labels, dtype=torch.float64)
    changes = torch.zeros(num_labels, num_labels, dtype=torch.float64)
    intended = torch.zeros(num_labels, dtype=torch.float64)
    exact = torch.zeros(num_labels, dtype=torch.float64)
    target_hits, target_count = torch.zeros(num_labels, dtype=torch.float64), 0
    by_class = {i: torch.zeros(2, k, dtype=torch.float64) for i, k in enumerate(num_classes) if k > 2}  # hits, tries
    for index in analysis.index_batches("single interventions"):
        where = index.to(analysis.device)
        z_c, z_s, current = z_c_all[where], z_s_all[where], analysis.current_labels[where]
        labels, mask = analysis.labels(index)
        complete = mask.all(-1)
        target_count += int(complete.sum())
        log_ref = reader.log_probs(rep.decode(z_c, z_s))
        decision = predicted_classes(log_ref)
        ref = reference_log_probs(log_ref, decision)
        for i, k in enumerate(num_classes):
            share = 1.0 / (k - 1)  # each target class's part of the mean over targets
            for offset in range(1, k):
                target = target_classes(current, i, k, offset)
                log_after = reader.log_probs(rep.decode(switched(rep, z_c, current, i, sample=False, offset=offset), z_s))
                after = predicted_classes(log_after)
                effect[i] += share * (reference_log_probs(log_after, decision) - ref).abs().sum(0).double().cpu()
                changed = after != decision  # [B, L]
                changes[i] += share * changed.sum(0).double().cpu()
                hit = changed[:, i] if k == 2 else after[:, i] == target
                others = torch.cat([changed[:, :i], changed[:, i + 1 :]], dim=1).any(-1)
                intended[i] += share * float(hit.sum())
                exact[i] += share * float((hit & ~others).sum())
                goal = labels.long().clone()
                goal[:, i] = target
                target_hits[i] += share * float(((after == goal).all(-1) & complete).sum())
                if k > 2:
                    by_class[i][0].index_add_(0, target.cpu(), hit.double().cpu())
                    by_class[i][1].index_add_(0, target.cpu(), torch.ones_like(hit, dtype=torch.float64).cpu())
    n = len(analysis)
    effect, changes, intended, exact = effect / n, changes / n, intended / n, exact / n
    names = analysis.label_names
    off = ~torch.eye(num_labels, dtype=torch.bool)
    others_flipped = (changes * off).sum(1) / max(num_labels - 1, 1)
    out = {
        "labels": names,
        "matrix": effect.tolist(),
        "condition_number": condition_number(effect.numpy()),
        "diagonal_mean": float(effect.diagonal().mean()),
        "off_diagonal_mean": float(effect[off].mean()) if num_labels > 1 else None,
        "exact_rate": dict(zip(names, exact.tolist())),
        "exact_rate_mean": float(exact.mean()),
        "intended_rate": dict(zip(names, intended.tolist())),
        "others_flipped": dict(zip(names, others_flipped.tolist())),
        "target_rate": dict(zip(names, (target_hits / target_count).tolist())) if target_count else None,
    }
    if by_class:
        out["intended_rate_by_class"] = {
            names[i]: [float(h / t) if t else None for h, t in zip(*counts.tolist())] for i, counts in by_class.items()
        }
    out["num_images"] = n
    return out


def matrix_array(result: dict) -> np.ndarray:
    """The ``matrix`` of a :func:`single_interventions` result as an array."""
    return np.asarray(result["matrix"], dtype=np.float64)


def mean_variance(maps: torch.Tensor, names: Sequence[str], labels: Sequence[int]) -> dict[str, Optional[float]]:
    """Per intervened label, the mean per-pixel variance of its diversity maps."""
    return {names[i]: float(maps[:, k].mean()) for k, i in enumerate(labels)}


def class_variance(draws: torch.Tensor) -> list[float]:
    """Per class (row of a :func:`class_draws` grid ``[K, draws, C, H, W]``), the per-pixel
    variance over its draws, averaged over channels and pixels (0 with a single draw)."""
    if draws.shape[1] < 2:
        return [0.0] * draws.shape[0]
    return draws.var(1).mean((-3, -2, -1)).tolist()
