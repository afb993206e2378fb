"""The defaults per data set (pyro_ccvae.models.dataset_defaults): filled into a run's config, and a
default run on real handwritten digits that does not collapse."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.models.dataset_defaults import DATASET_DEFAULTS, DATASET_SETTINGS, PAPER, dataset_defaults
from pyro_ccvae.models import get_family
from pyro_ccvae.training import train

#: 2,500 real MNIST digits in the official layout, beside the project in its development tree.
MNIST_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist-sample"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_every_registered_data_set_has_defaults():
    from pyro_ccvae.choices import DATASETS

    assert set(DATASET_DEFAULTS) == set(DATASETS)
    assert dataset_defaults("a data set nobody registered") == PAPER


@pytest.mark.parametrize("model", ["ccvae", "m2", "diva", "mvae"])
def test_left_settings_are_filled_from_the_data_set_and_given_ones_kept(model):
    config = TrainConfig.from_options(model=model, dataset="mnist").model
    given = TrainConfig.from_options(model=model, dataset="mnist", likelihood="laplace").model
    family = get_family(model)
    family.fill_defaults(config, "mnist")
    family.fill_defaults(given, "mnist")
    for name in DATASET_SETTINGS:
        if hasattr(config, name):
            # M2's z, its only continuous latent, keeps the paper's size (4 dims collapsed it on digits)
            expected = PAPER.z_style_dim if (model, name) == ("m2", "z_style_dim") else getattr(DATASET_DEFAULTS["mnist"], name)
            assert getattr(config, name) == expected, name
    assert given.likelihood == "laplace"


def test_runs_written_before_the_per_data_set_objective_keep_theirs():
    """A config.json from before these options read as what it ran with: the linear classifier,
    the weight with its gradient."""
    raw = TrainConfig.from_options(dataset="digits", z_char_dim=1, z_style_dim=27, likelihood="laplace-learned", classifier_weight=1000.0).to_dict()
    for key in ("label_classifier", "detach_weight"):
        del raw["model"][key]
    model = TrainConfig.from_dict(raw).model
    assert (model.label_classifier, model.detach_weight) == ("linear", False)


def _health(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["health"]


def test_a_default_run_on_real_digits_does_not_collapse(tmp_path):
    """scikit-learn's real 8x8 digits, every default but the length: reconstructions well below the
    mean image's error, the prior's samples read as their class, no health warning."""
    config = TrainConfig.from_options(dataset="digits", epochs=12, num_train=600, k_samples=16)
    summary = train(config, tmp_path / "run", progress=False)
    health = _health(tmp_path / "run")
    assert health["warnings"] == []
    assert health["reconstruction"]["ratio"] < 0.8  # 0.36 after the default 20 epochs on all 1,258 images
    assert min(health["prior_recognition"]["balanced"].values()) > 0.9
    assert summary["test_accuracy_mean"] > 0.5


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_SAMPLE.is_dir(), reason="the real MNIST sample lies beside the development tree only")
def test_a_default_run_on_real_mnist_draws_digits_not_black_images(tmp_path):
    """MNIST's black background, every default (20 epochs on 1,800 training digits, about a minute
    on one thread): the likelihood must not learn the median (black) image, and the prior's
    samples are read as their class."""
    config = TrainConfig.from_options(dataset="mnist", data_dir=str(MNIST_SAMPLE))
    train(config, tmp_path / "run", progress=False)
    health = _health(tmp_path / "run")
    assert health["warnings"] == []
    assert health["reconstruction"]["ratio"] < 0.5
    assert min(health["prior_recognition"]["balanced"].values()) > 0.95
