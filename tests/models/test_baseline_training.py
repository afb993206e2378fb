"""The baselines train, save and reload through the house's training loop on categorical labels
(a 3-class label beside a binary one, partly unobserved), and M2 picks its estimator by the size
of the joint label space and records it in the run's config."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.data import DATASETS
from pyro_ccvae.run_directory import load_run
from pyro_ccvae.training import train

BASELINES = ("m2", "diva", "mvae")
SMALL = {"m2": {"z_style_dim": 3}, "diva": {"z_style_dim": 3}, "mvae": {"z_dim": 6}}


def with_categorical_labels(split):
    """``shapes`` with a 3-class label (0: circle, 1: small square, 2: large square) and ``red``,
    the latter unobserved for every third image."""
    square, red, large = (split.labels[:, split.label_names.index(name)] for name in ("square", "red", "large"))
    labels = torch.stack([square * (1 + large), red], dim=-1)
    mask = torch.ones_like(labels, dtype=torch.bool)
    mask[::3, 1] = False
    return dataclasses.replace(split, labels=labels * mask, mask=mask, label_names=("kind", "red"), num_classes=(3, 2), attributes=None)


def load_categorical(options):
    shapes = DATASETS["shapes"](options)
    return dataclasses.replace(
        shapes, train=with_categorical_labels(shapes.train), valid=with_categorical_labels(shapes.valid),
        test=with_categorical_labels(shapes.test), name="categorical", attribute_names=None, render=None,
    )  # fmt: skip


@pytest.fixture
def categorical(monkeypatch):
    monkeypatch.setitem(DATASETS, "categorical", load_categorical)
    return "categorical"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", BASELINES)
def test_a_baseline_trains_and_answers_on_categorical_labels(name, categorical, tmp_path):
    config = TrainConfig.from_options(
        model=name, dataset=categorical, num_train=40, epochs=1, batch_size=16, sup_frac=0.5, device="cpu", **SMALL[name]
    )
    summary = train(config, tmp_path / "run", progress=False)
    assert set(summary["test_accuracy"]) == {"kind", "red"}
    run = load_run(tmp_path / "run", "cpu")
    assert run.num_classes == [3, 2]
    rep = run.representation
    x = torch.rand(4, *run.data.test.images.shape[1:])
    with run.scope():
        probs = rep.predict(x)
        assert probs.shape == (4, 2, 3) and torch.isfinite(probs).all()
        assert torch.allclose(probs.sum(-1), torch.ones(4, 2)) and (probs[:, 1, 2] == 0).all()  # red has 2 classes
        y = rep.sample_labels(4, {0: 2})
        assert (y[:, 0] == 2).all() and set(y[:, 1].tolist()) <= {0.0, 1.0}
        assert rep.decode(rep.sample_characteristic(y), rep.sample_style((4,))).shape == x.shape
        z_c, z_s = rep.encode(x)
        moved = rep.intervene(z_c, 0, 2, sample=False)
        assert torch.equal(moved[:, 1], z_c[:, 1]) and not torch.equal(moved[:, 0], z_c[:, 0])
        if name != "diva":  # M2 and MVAE read the label vector itself; DIVA's classifier is learned
            assert (rep.classify(moved)[:, 0].argmax(-1) == 2).all()
        assert torch.isfinite(rep.decode(moved, z_s)).all()


@pytest.mark.parametrize(
    "dataset, labels, expected",
    [("shapes", None, "enumerate"), ("digits", None, "enumerate"), ("digits", tuple("0123456789"), "sampled")],
)
def test_m2_records_the_estimator_it_chose(dataset, labels, expected, tmp_path):
    """Six binary labels (64 joint values) and one 10-class digit are enumerated; ten one-vs-rest
    digit columns (1024 joint values) are sampled."""
    config = TrainConfig.from_options(
        model="m2", dataset=dataset, labels=labels, num_train=32, epochs=1, batch_size=16, sup_frac=0.25, device="cpu",
        z_style_dim=3,
    )  # fmt: skip
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["test_accuracy_mean"] is not None
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["label_sum"] == expected
    assert load_run(tmp_path / "run", "cpu", load_data=False).config.model.label_sum == expected
