"""Metrics of labels with more than two classes: hand-checked arrays, sklearn's one-vs-rest AUROC,
the fake categorical model's known answers, label specs, and the judge's categorical outputs."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from pyro_ccvae.analysis import metrics
from pyro_ccvae.analysis.classifier import (
    IndependentClassifier, class_log_probs, judge_loss, load_classifier, output_widths,
)  # fmt: skip
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.judge import LabelReader
from pyro_ccvae.analysis.labels import parse_label_vectors
from pyro_ccvae.checkpoint import atomic_save
from pyro_ccvae.prediction import chance_accuracy

from .categorical_fakes import NAMES, NUM_CLASSES, SPACING, fake_run, image_set, level_side_data


def test_confusion_matrix_by_hand():
    labels, predicted = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2])
    expected = [[1, 1, 0], [0, 1, 0], [1, 0, 2]]  # rows: true class, columns: predicted
    assert metrics.confusion_matrix(labels, predicted, 3).tolist() == expected
    assert metrics.confusion_matrix(labels[:2], predicted[:2], 4).tolist() == [[1, 1, 0, 0]] + [[0] * 4] * 3
    assert metrics.confusion_matrix(np.array([]), np.array([]), 2).tolist() == [[0, 0], [0, 0]]


def test_accuracy_of_class_probabilities_is_argmax():
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    assert metrics.accuracy(probs, np.array([1, 0, 2])) == 1.0
    assert metrics.accuracy(probs, np.array([0, 0, 0])) == pytest.approx(1 / 3)
    assert metrics.accuracy(np.zeros((0, 3)), np.array([])) is None


def test_one_vs_rest_auroc_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=200)
    probs = rng.dirichlet(np.ones(4), size=200) + 0.5 * np.eye(4)[labels]
    probs /= probs.sum(-1, keepdims=True)
    ours = metrics.one_vs_rest_auroc(probs, labels)
    assert ours == pytest.approx(list(roc_auc_score(labels, probs, multi_class="ovr", average=None)))
    assert np.mean(ours) == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert metrics.one_vs_rest_auroc(probs[labels != 3], labels[labels != 3])[3] is None  # an absent class


def test_chance_is_the_most_frequent_class_share():
    labels = torch.tensor([[0, 1], [2, 1], [2, 0], [2, 1]], dtype=torch.float)
    mask = torch.tensor([[True, True], [True, True], [True, False], [False, False]])
    assert chance_accuracy(labels, mask) == [2 / 3, 1.0]  # seen: [0, 2, 2] and [1, 1]
    assert chance_accuracy(labels, torch.zeros_like(mask)) == [None, None]


def test_wasserstein_matrix_is_symmetric_with_a_zero_diagonal():
    a = np.random.default_rng(1).normal(size=300)
    matrix = np.array(metrics.wasserstein_matrix([a, a + 1.0, a + 3.0]))
    assert np.allclose(matrix, [[0, 1, 3], [1, 0, 2], [3, 2, 0]])
    assert np.array_equal(matrix, matrix.T) and np.all(np.diag(matrix) == 0)
    assert metrics.off_diagonal_mean(matrix.tolist()) == pytest.approx(2.0)
    with_empty = metrics.wasserstein_matrix([a, np.array([]), a])
    assert with_empty[1] == [None, None, None] and with_empty[0][2] == 0.0
    assert metrics.off_diagonal_mean(with_empty) == 0.0


def _every_class_analysis() -> Analysis:
    """The fake model on 24 images covering every class of every label (posterior means at the class means)."""
    i = torch.arange(24)
    labels = torch.stack([(i % 3).float(), (i % 4).float(), (i // 12).float()], dim=1)
    run = fake_run()
    return Analysis(run, image_set(labels), progress=False)


def test_classification_of_an_exact_model():
    result = metrics.classification(_every_class_analysis())
    assert result["accuracy"] == dict.fromkeys(NAMES, 1.0)
    assert result["chance"] == {"shape": 1 / 3, "digit": 1 / 4, "flag": 1 / 2}
    assert result["confusion"]["shape"] == (8 * np.eye(3, dtype=int)).tolist()
    assert result["confusion"]["flag"] == [[12, 0], [0, 12]]
    assert result["auroc"] == dict.fromkeys(NAMES, 1.0)
    assert set(result["auroc_per_class"]) == {"shape", "digit"}  # binary labels keep their one AUROC
    assert result["auroc_per_class"]["digit"] == [1.0] * 4


def test_binary_classification_keeps_its_keys():
    from .categorical_fakes import FakeCategorical

    class Binary(FakeCategorical):
        def __init__(self):
            super().__init__()
            self.num_classes = [2, 2, 2]

    labels = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=torch.float)
    run = fake_run()
    run.representation = Binary()
    result = metrics.classification(Analysis(run, image_set(labels), progress=False))
    assert list(result) == ["accuracy", "accuracy_mean", "chance", "auroc", "auroc_mean", "confusion", "seen", "num_images"]
    separation = metrics.latent_separation(Analysis(run, image_set(labels), progress=False))
    assert list(separation) == ["wasserstein", "wasserstein_mean"]
    assert separation["wasserstein"] == dict.fromkeys(NAMES, SPACING)


def test_latent_separation_per_class():
    result = metrics.latent_separation(_every_class_analysis())
    digit = np.array(result["wasserstein_matrix"]["digit"])
    k = np.arange(4)
    assert np.allclose(digit, SPACING * np.abs(k[:, None] - k[None, :]))  # posterior means at the class means
    assert result["wasserstein"]["digit"] == pytest.approx(SPACING * 20 / 12)  # off-diagonal mean of |k - l|
    assert result["wasserstein"]["flag"] == SPACING and "flag" not in result["wasserstein_matrix"]
    values = metrics.characteristic_values(_every_class_analysis())
    assert [len(v) for v in values] == list(NUM_CLASSES) and all(np.all(v[1] == SPACING) for v in values)


def test_classes_around_a_circle_separate_in_all_dims():
    """Four digit classes at 10 (cos, sin)(pi k / 2): classes 1 and 3 share their first coordinate."""
    analysis = _every_class_analysis()
    angle = np.pi / 2 * analysis.split.labels[:, 1]
    circle = 10 * torch.stack([torch.cos(angle), torch.sin(angle)], -1).round()
    z_c = torch.zeros(len(analysis), 3, 2)
    z_c[:, 1] = circle
    analysis.__dict__["posterior_means"] = (z_c, torch.zeros(len(analysis), 2))
    result = metrics.latent_separation(analysis)
    assert result["wasserstein_matrix"]["digit"][1][3] == 0.0  # the first dim cannot tell them apart
    l1 = (circle[:, None] - circle[None]).abs().sum(-1)  # the classes are points: W1 is the L1 distance
    by_class = [l1[analysis.split.labels[:, 1] == a][:, analysis.split.labels[:, 1] == b][0, 0] for a in range(4) for b in range(4)]
    assert np.allclose(result["wasserstein_matrix_all_dims"]["digit"], np.array(by_class).reshape(4, 4))
    assert result["wasserstein_matrix_all_dims"]["digit"][1][3] == 20.0
    assert set(result["wasserstein_matrix_all_dims"]) == {"shape", "digit"}  # labels of more than two classes only


def test_label_vectors_take_class_indices():
    assert parse_label_vectors(["shape=2,flag=1", "digit=3"], NAMES, NUM_CLASSES) == [{0: 2, 2: 1}, {1: 3}]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("digit=4", "label 'digit' has the classes 0..3"),
        ("shape=-1", "label 'shape' has the classes 0..2"),
        ("shape=one", "label 'shape' has the classes 0..2"),
        ("flag=2", "expected NAME=0 or NAME=1 ('flag' is binary)"),
        ("digit", "expected NAME=CLASS"),
        ("colour=1", "unknown label 'colour'"),
    ],
)
def test_label_vector_errors_name_the_range(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        parse_label_vectors([spec], NAMES, NUM_CLASSES)
    assert "\n" not in str(error.value)


# --- the judge ---------------------------------------------------------------------------------


def test_judge_outputs_one_logit_per_binary_label_and_k_per_other():
    assert output_widths([2, 3, 10]) == [1, 3, 10]
    outputs = torch.randn(5, 1 + 3 + 4)
    log_probs = class_log_probs(outputs, [2, 3, 4])
    assert log_probs.shape == (5, 3, 4)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(5, 3))
    assert torch.isinf(log_probs[:, 0, 2:]).all() and torch.isinf(log_probs[:, 1, 3]).all()  # classes a label lacks
    assert torch.allclose(log_probs[:, 0, 1], F.logsigmoid(outputs[:, 0]))
    assert torch.allclose(log_probs[:, 1, :3], F.log_softmax(outputs[:, 1:4], -1))


def test_judge_loss_is_the_seen_labels_negative_log_likelihood():
    outputs = torch.randn(6, 1 + 3)
    y = torch.tensor([[0, 2], [1, 0], [1, 1], [0, 2], [1, 0], [0, 1]], dtype=torch.float)
    mask = torch.rand(6, 2) > 0.3
    log_probs = class_log_probs(outputs, [2, 3])
    expected = -(log_probs.gather(-1, y.long().unsqueeze(-1)).squeeze(-1) * mask).sum() / mask.sum()
    assert torch.allclose(judge_loss(outputs, y, mask, [2, 3]), expected)
    binary = torch.randn(6, 2)
    y2 = (torch.rand(6, 2) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(binary, y2, weight=mask.float(), reduction="sum") / mask.sum()
    assert torch.equal(judge_loss(binary, y2, mask, [2, 2]), bce)  # binary judges train exactly as before


def test_a_judge_saved_before_categorical_labels_still_reads(tmp_path):
    torch.manual_seed(0)
    old = IndependentClassifier(["red", "square"], 3, 32).eval()
    atomic_save({"state_dict": old.state_dict(), "label_names": ["red", "square"], "channels": 3, "image_size": 32}, tmp_path / "classifier.pt")
    net = load_classifier(tmp_path, torch.device("cpu"))
    assert net.num_classes == [2, 2]
    reader = LabelReader(net, ["square", "red"], 3, 32, [2, 2])
    x = torch.rand(4, 3, 32, 32)
    logits = old(x)[:, [1, 0]]
    assert torch.allclose(reader.log_probs(x)[..., 1], F.logsigmoid(logits), atol=1e-6)
    assert torch.equal(reader.decisions(x), (logits > 0).long())
    with pytest.raises(ValueError, match="reads label 'red' as 2 classes, the run has 5; train one") as error:
        LabelReader(net, ["red"], 3, 32, [5])
    assert "\n" not in str(error.value)


def test_a_categorical_judge_trains_saves_and_reads(tmp_path, monkeypatch):
    from pyro_ccvae.analysis import classifier
    from pyro_ccvae.analysis.classifier import ClassifierConfig, train_classifier
    monkeypatch.setattr(classifier, "load_dataset", lambda name, options: level_side_data(96))  # 3-class brightness, binary bar
    summary = train_classifier(ClassifierConfig(dataset="shapes", epochs=2, batch_size=16, lr=3e-3, device="cpu"), tmp_path, progress=False)
    assert set(summary["test_accuracy"]) == set(summary["test_chance"]) == {"level", "side"}
    for name in ("level", "side"):  # both are easy to see: the judge beats always answering the commonest class
        assert summary["test_accuracy"][name] > summary["test_chance"][name] + 0.2
    net = load_classifier(tmp_path, torch.device("cpu"))
    assert net.num_classes == [3, 2]
    probs = LabelReader(net, ["side", "level"], 1, 32, [2, 3]).probs(level_side_data(96).test.images[:5].float() / 255)
    assert probs.shape == (5, 2, 3) and torch.all(probs[:, 0, 2] == 0)
    assert torch.allclose(probs.sum(-1), torch.ones(5, 2))
