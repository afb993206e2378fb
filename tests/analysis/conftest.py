"""One tiny trained run and one tiny independent classifier, shared by every analysis test.

Commands write into the run directory (figures, metrics.json, report.html); each test only
checks what it wrote itself, so the order of the tests does not matter.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyro_ccvae.analysis.classifier import ClassifierConfig, train_classifier
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.run_directory import load_run
from pyro_ccvae.training import train


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("analysis") / "run"
    config = TrainConfig.from_options(num_train=256, epochs=1, batch_size=64, k_samples=10, z_style_dim=4, device="cpu")
    train(config, path, progress=False)
    return path


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("analysis") / "classifier"
    train_classifier(ClassifierConfig(num_train=256, epochs=1, device="cpu", seed=1), path, progress=False)
    return path


@pytest.fixture(scope="session")
def run(run_dir):
    """The loaded run (CPU). Tests must not change its modules."""
    return load_run(run_dir, "cpu")


@pytest.fixture
def incomplete_run(run_dir, tmp_path) -> Path:
    """A copy of the run without its checkpoint."""
    path = tmp_path / "incomplete"
    path.mkdir()
    for name in ("config.json", "labelled.json", "splits.json"):
        shutil.copy(run_dir / name, path / name)
    return path
