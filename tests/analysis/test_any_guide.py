"""Analysis relies only on guide.mean, guide.classifier and guide traces: a correlated guide
(z_s depends on z_c) and partly seen labels work the same."""
from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.likelihood import importance_weighted
from pyro_ccvae.analysis.metrics import classification, latent_separation
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.training import train
from pyro_ccvae_cli.main import main


@pytest.fixture(scope="module")
def lowrank_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("lowrank") / "run"
    config = TrainConfig.from_options(num_train=128, epochs=1, batch_size=64, k_samples=5, z_style_dim=3, guide="lowrank", device="cpu")
    train(config, path, progress=False)
    return path


def test_commands_with_lowrank_guide(lowrank_run):
    for args in (["evaluate", "--iw-samples", 3, "--attribute-epochs", 0, "--no-progress"], ["traverse", "--steps", 3], ["swap", "--images", 2]):
        result = CliRunner().invoke(main, [args[0], str(lowrank_run), "--device", "cpu", *map(str, args[1:])], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    lik = json.loads((lowrank_run / "metrics.json").read_text())["likelihood"]
    assert lik["log_px_iwae"] >= lik["log_px_elbo"]


def test_partly_seen_labels(run):
    analysis = Analysis.from_run(run, max_images=20, progress=False)
    mask = analysis.split.mask.clone()
    mask[:, 0] = False  # label 0 never seen
    mask[::2, 1] = False  # label 1 seen on half the images
    analysis.split = dataclasses.replace(analysis.split, mask=mask)
    out = classification(analysis)
    names = analysis.label_names
    assert out["accuracy"][names[0]] is None and out["auroc"][names[0]] is None and out["seen"][names[0]] == 0
    assert out["seen"][names[1]] == 10
    assert latent_separation(analysis)["wasserstein"][names[0]] is None
    lik = importance_weighted(analysis, num_samples=2)
    assert lik["num_labelled_images"] == 20 and lik["log_pxy_iwae"] is not None
