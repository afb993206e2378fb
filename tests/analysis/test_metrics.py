"""Array-level metrics against known best and worst answers, and the label-argument parsers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyro_ccvae.analysis import metrics
from pyro_ccvae.analysis.classifier import class_log_probs
from pyro_ccvae.analysis.labels import parse_label_list, parse_label_vectors, parse_pairs
from pyro_ccvae.analysis.outputs import slug
from pyro_ccvae.health import random_partners
from pyro_ccvae.prediction import predicted_classes
from pyro_ccvae.run_directory import json_safe

NAMES = ["a", "b", "c"]


def test_accuracy_best_worst():
    labels = np.array([0, 1, 1, 0])
    assert metrics.accuracy(labels * 0.8 + 0.1, labels) == 1.0
    assert metrics.accuracy(1 - labels, labels) == 0.0
    assert metrics.accuracy(np.array([]), np.array([])) is None


def test_auroc_best_worst_and_undefined():
    labels = np.array([0, 0, 1, 1])
    assert metrics.auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert metrics.auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert metrics.auroc(np.array([0.1, 0.9]), np.array([1, 1])) is None  # one class


def test_wasserstein_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    assert metrics.wasserstein_1d(a, a) == 0.0
    assert metrics.wasserstein_1d(a, a + 3.0) == pytest.approx(3.0)
    assert metrics.wasserstein_1d(a, rng.normal(size=300)) >= 0
    assert metrics.wasserstein_1d(a, np.array([])) is None


def test_condition_number_best_worst():
    assert metrics.condition_number(2.5 * np.eye(4)) == pytest.approx(1.0)  # ideal: diagonal, equal effects
    assert metrics.condition_number(np.diag([2.0, 1.0])) == pytest.approx(2.0)
    assert metrics.condition_number(np.ones((3, 3))) is None  # every intervention moves every label alike
    random = np.abs(np.random.default_rng(1).normal(size=(5, 5)))
    assert metrics.condition_number(random) >= 1.0


def test_reference_log_probs_and_change():
    logits = torch.tensor([[2.0, -1.0], [-3.0, 0.5]])  # a judge's one logit per binary label
    log_probs = class_log_probs(logits, [2, 2])
    decision = predicted_classes(log_probs)
    assert torch.equal(decision, (logits > 0).long())  # the binary decision: logit > 0
    log_p = metrics.reference_log_probs(log_probs, decision)
    assert (log_p <= 0).all() and (log_p >= np.log(0.5)).all()  # the decided class is the likelier one
    assert torch.allclose(log_p, torch.nn.functional.logsigmoid(logits.abs()))


def test_random_partners_have_no_fixed_point():
    for n in (2, 3, 10):
        partner = random_partners(n, torch.Generator().manual_seed(n))
        assert sorted(partner.tolist()) == list(range(n))
        assert (partner != torch.arange(n)).all()


def test_label_parsers():
    assert parse_label_list(None, NAMES) == [0, 1, 2]
    assert parse_label_list("c, a", NAMES) == [2, 0]
    assert parse_pairs(None, NAMES) == [(0, 1)]
    assert parse_pairs("", NAMES) == []
    assert parse_pairs("a:c,b:a", NAMES) == [(0, 2), (1, 0)]
    assert parse_label_vectors(["a=1,b=0;c=1", ""], NAMES) == [{0: 1, 1: 0}, {2: 1}, {}]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: parse_label_list("a,zz", NAMES), "unknown label 'zz'"),
        (lambda: parse_label_list("a,,b", NAMES), "bad --labels"),
        (lambda: parse_label_list("a,a", NAMES), "named twice"),
        (lambda: parse_pairs("a-b", NAMES), "expected NAME:NAME"),
        (lambda: parse_pairs("a:a", NAMES), "two different labels"),
        (lambda: parse_label_vectors(["a=2"], NAMES), "NAME=0 or NAME=1"),
        (lambda: parse_label_vectors(["a"], NAMES), "NAME=0 or NAME=1"),
        (lambda: parse_label_vectors(["a=1,a=0"], NAMES), "set twice"),
    ],
)
def test_label_parser_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_json_safe_and_slug():
    assert json_safe({"x": float("inf"), "y": np.float32(1.5), "z": torch.tensor([1, 2])}) == {"x": None, "y": 1.5, "z": [1, 2]}
    assert slug("Pleural Effusion/x") == "Pleural_Effusion_x"


def test_most_visible_picks_the_image_with_an_object():
    from pyro_ccvae.analysis.traversal import most_visible

    images = torch.full((4, 3, 8, 8), 0.8)  # plain backgrounds ...
    images[1] = 0.2
    images[2, :, 2:6, 2:6] = 0.1  # ... and one with a dark square on it
    images[3, :, 0, 0] = 0.0  # a single odd pixel is not an object
    assert most_visible(images) == 2


def test_figure_names_carry_the_requested_labels():
    from pyro_ccvae.analysis.outputs import NAME_PARTS_MAX, figure_name

    assert figure_name("generate") == "generate"
    assert figure_name("generate", ["Pleural Effusion=1,Edema=0"]) == "generate_Pleural_Effusion_1_Edema_0"
    long = [f"attribute_{i}=1" for i in range(20)]
    name = figure_name("generate", long)
    assert len(name) == len("generate_") + NAME_PARTS_MAX and name != figure_name("generate", long[:-1] + ["x=0"])


def test_probe_accuracy_reads_a_label_that_is_there_and_not_one_that_is_not():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=400)
    noise = rng.normal(size=(400, 3))
    held = np.column_stack([labels + 0.1 * rng.normal(size=400), noise])  # the label in one dimension
    linear, knn = metrics.probe_accuracy(held, labels)
    assert linear > 0.98 and knn > 0.98
    linear, knn = metrics.probe_accuracy(noise, labels)
    assert abs(linear - 0.5) < 0.1 and abs(knn - 0.5) < 0.1
    ring = rng.uniform(0, 2 * np.pi, size=400)  # a label only a nonlinear probe reads: inside vs outside a ring
    radius = np.where(labels == 1, 2.0, 1.0) + 0.05 * rng.normal(size=400)
    linear, knn = metrics.probe_accuracy(np.column_stack([radius * np.cos(ring), radius * np.sin(ring)]), labels)
    assert knn > 0.95 and linear < 0.7
    assert metrics.probe_accuracy(noise, np.zeros(400, dtype=int)) == (None, None)  # one class
    assert metrics.probe_accuracy(noise[:, :0], labels) == (None, None)  # no z_s


def test_style_leakage_flags_the_label_z_s_holds_and_warns():
    from types import SimpleNamespace

    rng = np.random.default_rng(1)
    n = 500
    labels = torch.from_numpy(rng.integers(0, 2, size=(n, 2))).float()
    mask = torch.ones(n, 2, dtype=torch.bool)
    mask[:100, 1] = False  # unseen labels are not probed
    z_s = torch.from_numpy(np.column_stack([labels[:, 0].numpy() * 3 + rng.normal(size=n), rng.normal(size=(n, 2))]))
    analysis = SimpleNamespace(
        posterior_means=(torch.zeros(n, 2, 1), z_s), label_names=["holds", "free"], split=SimpleNamespace(labels=labels, mask=mask)
    )
    leak = metrics.style_leakage(analysis)
    assert leak["leaking_labels"] == ["holds"]
    assert leak["leakage"]["holds"] > 0.8 and leak["leakage"]["free"] < 0.2
    chance = float(labels[100:, 1].long().bincount().max()) / 400
    assert leak["chance"]["free"] == pytest.approx(chance)
    best = max(leak["linear_accuracy"]["holds"], leak["knn_accuracy"]["holds"])
    assert leak["leakage"]["holds"] == pytest.approx((best - leak["chance"]["holds"]) / (1 - leak["chance"]["holds"]))
    warning = metrics.leakage_warning(leak)
    assert "holds (" in warning and "free" not in warning
    free = metrics.style_leakage(SimpleNamespace(**{**vars(analysis), "posterior_means": (torch.zeros(n, 2, 1), z_s[:, 1:])}))
    assert free["leaking_labels"] == [] and metrics.leakage_warning(free) is None
    assert leak["num_images"] == n


def test_style_leakage_reads_a_seeded_subset_of_a_large_split(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(metrics, "PROBE_MAX_IMAGES", 300)
    rng = np.random.default_rng(2)
    labels = torch.from_numpy(rng.integers(0, 2, size=(1000, 1))).float()
    z_s = torch.from_numpy(labels.numpy() * 3 + rng.normal(size=(1000, 1)))
    analysis = SimpleNamespace(
        posterior_means=(torch.zeros(1000, 1, 1), z_s), label_names=["holds"],
        split=SimpleNamespace(labels=labels, mask=torch.ones(1000, 1, dtype=torch.bool)),
    )  # fmt: skip
    first, again = metrics.style_leakage(analysis, seed=3), metrics.style_leakage(analysis, seed=3)
    assert first["num_images"] == 300 and first == again and first["leaking_labels"] == ["holds"]
