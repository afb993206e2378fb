"""Characteristic swaps (the paper's Figs. 6-7 and Table 2): ``z_c`` of one image decoded with
``z_s`` of another. If ``z_s`` holds only style, the labels of the result follow the ``z_c`` image.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..health import random_partners
from ..models.base import DECODE, ENCODE, SWAP, Representation
from ..prediction import predicted_classes
from .context import Analysis
from .metrics import reference_log_probs

#: the capabilities swaps ask of a model.
NEEDS = (ENCODE, SWAP, DECODE)


@torch.no_grad()
def swap_grid(representation: Representation, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """``[N, N, C, H, W]``: cell ``[r, c]`` decodes ``z_c[r]`` with ``z_s[c]``, so the diagonal
    holds the plain reconstructions. ``z_c [N, L, d_c]``, ``z_s [N, d_s]``."""
    n = z_c.shape[0]
    return representation.decode(z_c.unsqueeze(1).expand(n, n, *z_c.shape[1:]), z_s.unsqueeze(0).expand(n, n, -1))


@torch.no_grad()
def swap_metric(analysis: Analysis, partners: Optional[torch.Tensor] = None) -> dict:
    """Table 2: the mean absolute change of the independent classifier's log-probabilities
    (of its decisions, the most probable classes, on the reconstruction) when an image's ``z_s`` is replaced by another
    image's. Lower is better; 0 if nothing changes (e.g. ``partners`` the identity).

    :param partners: ``[N]``, the image whose ``z_s`` each image receives; default
        :func:`random_partners` (seeded by the global RNG).
    """
    reader = analysis.require_classifier("the characteristic-swap metric")
    n = len(analysis)
    partners = random_partners(n) if partners is None else partners
    z_c_all, z_s_all = analysis.posterior_means
    partners = partners.to(analysis.device)
    total = torch.zeros(analysis.num_labels, dtype=torch.float64)
    for index in analysis.index_batches("swap metric"):
        where = index.to(analysis.device)
        z_c, z_s = z_c_all[where], z_s_all[where]
        log_ref = reader.log_probs(analysis.representation.decode(z_c, z_s))
        decision = predicted_classes(log_ref)
        log_swapped = reader.log_probs(analysis.representation.decode(z_c, z_s_all[partners[where]]))
        change = (reference_log_probs(log_swapped, decision) - reference_log_probs(log_ref, decision)).abs()
        total += change.sum(0).double().cpu()
    per_label = total / n
    return {
        "log_prob_change": dict(zip(analysis.label_names, per_label.tolist())),
        "log_prob_change_mean": float(per_label.mean()),
        "num_images": n,
    }
