"""Swaps judged by the renderer, on data whose generating factors are known (``shapes``).

A characteristic swap decodes ``z_c`` of image ``a`` with ``z_s`` of image ``b``. If ``z_c``
holds exactly the labels and ``z_s`` everything else, the result is the image the renderer
draws from ``a``'s labels and ``b``'s other factors (the *target*), not ``a`` itself (the
*source*). Both are rendered exactly, so no judge is involved::

    target_mae   mean |swap - render(labels of a, other factors of b)|   per pixel, [0, 1] images
    source_mae   mean |swap - render(every factor of a)|
    follow_rate  fraction of pairs whose swap is closer to the target than to the source

``follow_rate`` near 1 means the nuisance factors follow ``z_s``; near 0, that ``z_s`` is
ignored (the swap reproduces ``a``). ``reconstruction_mae`` (``|decode(z_a) - x_a|``) is the
floor both distances sit on.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import UserError
from .context import Analysis
from ..health import random_partners


def has_ground_truth(analysis: Analysis) -> bool:
    return analysis.split.attributes is not None and analysis.run.data.render is not None


@torch.no_grad()
def nuisance_transfer(analysis: Analysis, partners: Optional[torch.Tensor] = None) -> dict:
    """The measures above over the analysed split; ``partners[k]`` gives image ``k`` its ``z_s``
    (default :func:`pyro_ccvae.health.random_partners`)."""
    data = analysis.run.data
    if not has_ground_truth(analysis):
        raise UserError(f"the {data.name} data set has no renderer of its factors; nuisance transfer needs one (shapes)")
    n = len(analysis)
    partners = random_partners(n) if partners is None else partners
    # which attribute columns are the run's labels: those stay with the z_c image
    label_columns = [data.attribute_names.index(name) for name in analysis.label_names]
    attributes = analysis.split.attributes
    z_c_all, z_s_all = analysis.posterior_means
    sums = dict.fromkeys(["target_mae", "source_mae", "reconstruction_mae", "follow"], 0.0)
    for index in analysis.index_batches("nuisance transfer"):
        where = index.to(analysis.device)
        source = attributes[index]
        target = attributes[partners[index]].clone()
        target[:, label_columns] = source[:, label_columns]
        swapped = analysis.representation.decode(z_c_all[where], z_s_all[partners[index].to(analysis.device)])
        recon = analysis.representation.decode(z_c_all[where], z_s_all[where])

        def mae(images, attrs):
            return (images - data.render(attrs).to(analysis.device).float().div(255)).abs().flatten(1).mean(1)

        to_target, to_source = mae(swapped, target), mae(swapped, source)
        sums["target_mae"] += float(to_target.sum())
        sums["source_mae"] += float(to_source.sum())
        sums["reconstruction_mae"] += float(mae(recon, source).sum())
        sums["follow"] += float((to_target < to_source).sum())
    return {
        "target_mae": sums["target_mae"] / n,
        "source_mae": sums["source_mae"] / n,
        "reconstruction_mae": sums["reconstruction_mae"] / n,
        "follow_rate": sums["follow"] / n,
        "num_images": n,
    }
