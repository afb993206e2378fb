"""Nuisance transfer, judged by the shapes renderer, on a model that is perfect by construction."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.ground_truth import nuisance_transfer
from pyro_ccvae.data import ImageSet
from pyro_ccvae.data.shapes import ATTRIBUTE_NAMES, LABEL_NAMES, render, sample_attributes

LABELS = ("square", "right")  # a label subset: the other binary attributes are nuisances too


def perfect_analysis(n=12):
    """z_c holds exactly the labels, z_s every attribute; decoding renders the labels from z_c and
    everything else from z_s, so a swap is exactly the renderer's target."""
    attributes = torch.from_numpy(sample_attributes(n, np.random.default_rng(0)))
    columns = [ATTRIBUTE_NAMES.index(name) for name in LABELS]

    def decode(z_c, z_s):
        attrs = z_s.clone()
        attrs[:, columns] = z_c[:, :, 0]
        return render(attrs, 32).float() / 255

    split = ImageSet(
        images=render(attributes, 32), labels=attributes[:, columns], mask=torch.ones(n, len(LABELS), dtype=torch.bool),
        label_names=LABELS, attributes=attributes,
    )
    data = SimpleNamespace(name="shapes", attribute_names=ATTRIBUTE_NAMES, render=lambda a: render(a, 32))
    run = SimpleNamespace(data=data, representation=SimpleNamespace(decode=decode), device=torch.device("cpu"), label_names=list(LABELS))
    analysis = Analysis(run, split, batch_size=5, progress=False)
    analysis.__dict__["posterior_means"] = (attributes[:, columns].unsqueeze(-1), attributes.clone())
    return analysis, attributes


def test_a_perfect_model_transfers_every_nuisance():
    analysis, attributes = perfect_analysis()
    result = nuisance_transfer(analysis)
    assert result["target_mae"] == 0 and result["reconstruction_mae"] == 0
    assert result["source_mae"] > 0.01 and result["follow_rate"] == 1.0


def test_swapping_with_itself_moves_nothing():
    analysis, _ = perfect_analysis()
    result = nuisance_transfer(analysis, partners=torch.arange(len(analysis)))
    assert result["target_mae"] == result["source_mae"] == result["reconstruction_mae"] == 0
    assert result["follow_rate"] == 0.0  # never strictly closer to the target than to the source
    assert set(LABEL_NAMES) > set(LABELS)
