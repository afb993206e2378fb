"""The judge's uncertainty (Table 7): the mutual information against closed forms, the GP heads
(Pyro's VariationalSparseGP) fitted on the judge's penultimate features, saved in the judge
directory under its manifest, and ``evaluate``'s section through the command line (or its
named reason for skipping)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from pyro_ccvae.analysis import classifier as judges
from pyro_ccvae.analysis.classifier import ClassifierConfig, load_classifier, train_classifier
from pyro_ccvae.analysis.judge_uncertainty import (
    F_SAMPLES, JudgeUncertainty, entropy, fit_uncertainty, load_uncertainty, mutual_information,
)  # fmt: skip

from analysis.categorical_fakes import level_side_data  # tests/ is on the path of its top-level modules
from cli_helpers import cli

#: a small GP head: seconds on a CPU.
SMALL_GP = dict(gp_steps=150, gp_inducing=32, gp_points=200)


def test_mutual_information_against_closed_forms():
    certain = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # identical samples: the prediction says nothing about the parameters
    same = torch.tensor([0.3, 0.7]).expand(10, 4, 2)
    assert torch.allclose(mutual_information(same), torch.zeros(4), atol=1e-6)
    # an even two-point mixture of certain, opposite predictions: log 2
    assert mutual_information(certain.unsqueeze(1)).item() == pytest.approx(math.log(2))
    # three certain predictions of three classes: log 3, the most a 3-class label can have
    assert mutual_information(torch.eye(3).unsqueeze(1)).item() == pytest.approx(math.log(3))
    # a hand-computed case: samples (0.9, 0.1) and (0.5, 0.5), mean (0.7, 0.3)
    h = lambda *p: -sum(x * math.log(x) for x in p)  # noqa: E731
    probs = torch.tensor([[[0.9, 0.1]], [[0.5, 0.5]]], dtype=torch.float64)
    assert mutual_information(probs).item() == pytest.approx(h(0.7, 0.3) - (h(0.9, 0.1) + h(0.5, 0.5)) / 2)
    assert entropy(torch.tensor([0.0, 1.0])).item() == 0.0  # 0 log 0 = 0


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """A judge with GP heads on fake data: a 3-class label (MultiClass) and a binary one (Binary)."""
    folder = tmp_path_factory.mktemp("judge")
    patch = pytest.MonkeyPatch()
    patch.setattr(judges, "load_dataset", lambda name, options: level_side_data(160))
    try:
        summary = train_classifier(
            ClassifierConfig(dataset="shapes", epochs=6, batch_size=16, lr=3e-3, device="cpu", **SMALL_GP), folder, progress=False
        )  # fmt: skip
    finally:
        patch.undo()
    return folder, summary


def test_the_gp_heads_are_saved_under_the_manifest_and_read_the_labels(judge):
    folder, summary = judge
    assert set(json.loads((folder / judges.MANIFEST).read_text())["sha256"]) == {*judges.JUDGE_FILES}
    settings = summary["uncertainty"]
    assert settings["inducing_points"] == 32 and settings["steps"] == 150 and settings["f_samples"] == F_SAMPLES
    assert settings["likelihood"] == {"level": "MultiClass (3 latent functions, softmax)", "side": "Binary (sigmoid)"}
    for label, chance in (("level", 1 / 3), ("side", 1 / 2)):  # easy labels: the GP head reads them
        assert settings["test_accuracy"][label] > chance + 0.3
    net = load_classifier(folder, torch.device("cpu"))
    head = load_uncertainty(folder, net, torch.device("cpu"))
    images = level_side_data(160).test.images[:20]
    features = head.features(images)
    for label, k in (("level", 3), ("side", 2)):
        probs = head.probs_samples(features, label)
        assert probs.shape == (F_SAMPLES, 20, k) and torch.allclose(probs.sum(-1), torch.ones(()))
        decisions, mi = head.read(images, label)
        assert decisions.shape == mi.shape == (20,) and bool(((mi >= 0) & (mi <= math.log(k) + 1e-6)).all())
    # a saved head predicts as the fitted one did (the summary's numbers come back from the file)
    again = JudgeUncertainty.from_bytes((folder / judges.UNCERTAINTY).read_bytes(), net, torch.device("cpu"))
    assert again.describe(level_side_data(160).test) == summary["uncertainty"]


def test_images_unlike_the_training_images_have_more_mutual_information(judge):
    """The point of the measure: noise images, far from every training feature, leave the GP's
    latent function uncertain; real images do not."""
    folder, _ = judge
    net = load_classifier(folder, torch.device("cpu"))
    head = load_uncertainty(folder, net, torch.device("cpu"))
    real = level_side_data(160).test.images[:64]
    noise = torch.randint(0, 256, real.shape, generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    for label in ("level", "side"):
        assert head.read(noise, label)[1].mean() > 2 * head.read(real, label)[1].mean()


def test_an_altered_gp_head_is_refused_in_one_line(judge, tmp_path):
    import shutil

    folder = tmp_path / "judge"
    shutil.copytree(judge[0], folder)
    (folder / judges.UNCERTAINTY).write_bytes(b"not a head")
    net = load_classifier(judge[0], torch.device("cpu"))
    with pytest.raises(ValueError, match="uncertainty.pt does not match manifest.json") as error:
        load_uncertainty(folder, net, torch.device("cpu"))
    assert "\n" not in str(error.value)


def test_fit_uncertainty_is_seeded(judge):
    folder, _ = judge
    net = load_classifier(folder, torch.device("cpu"))
    config = ClassifierConfig(dataset="shapes", device="cpu", gp_steps=5, gp_inducing=8, gp_points=40)
    train = level_side_data(60).train
    a, b = (fit_uncertainty(net, train, config, torch.device("cpu")) for _ in range(2))
    assert a.to_bytes() == b.to_bytes()


# --- evaluate's section, through the command line ---------------------------------------------------

TINY_DATA = ["--dataset", "shapes", "--num-train", "64", "--image-size", "32", "--labels", "square,red"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    run = folder / "run"
    result = cli(
        "train", "--out", run, *TINY_DATA, "--epochs", "1", "--batch-size", "32", "--z-style-dim", "3", "--k-samples", "4",
        "--device", "cpu", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with_head, without = folder / "judge", folder / "old_judge"
    common = ["--epochs", "2", "--device", "cpu", "--no-progress", "--gp-inducing", "16", "--gp-points", "64"]
    assert cli("train-classifier", "--out", with_head, *TINY_DATA, *common, "--gp-steps", "40").exit_code == 0
    assert cli("train-classifier", "--out", without, *TINY_DATA, *common, "--gp-steps", "0").exit_code == 0
    return run, with_head, without


EVALUATE = ["--device", "cpu", "--iw-samples", "2", "--max-images", "12", "--gen-samples", "8", "--no-progress"]


def test_evaluate_reports_the_mutual_information_of_generated_images_beside_real_ones(tiny_run):
    run, judge, _ = tiny_run
    result = cli("evaluate", run, *EVALUATE, "--classifier", judge)
    assert result.exit_code == 0, result.output
    section = json.loads((run / "metrics.json").read_text())["judge_uncertainty"]
    for label in ("square", "red"):
        assert len(section["requested_class_rate"][label]) == len(section["mutual_information_generated"][label]) == 2
        assert all(0 <= v <= 1 for v in section["requested_class_rate"][label])
        assert all(0 <= v <= math.log(2) for v in section["mutual_information_generated"][label])
        assert 0 <= section["mutual_information_test"][label] <= math.log(2)
    assert section["samples_per_class"] == 100 and section["f_samples"] == F_SAMPLES and section["num_test_images"] == 12
    assert "judge's uncertainty (MI, nats; generated vs real test images): square " in result.output
    assert "judge_uncertainty" in (run / "report.html").read_text()


def test_evaluate_with_a_judge_without_a_gp_head_names_why_it_skipped(tiny_run):
    run, _, old = tiny_run
    result = cli("evaluate", run, *EVALUATE, "--classifier", old)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert "judge_uncertainty" not in metrics  # the earlier evaluation's section is not left beside this one
    why = metrics["evaluation"]["skipped"]["judge_uncertainty"]
    assert "has no GP head" in why and f"train-classifier --out {old}" in why
    assert f"skipped judge_uncertainty: {why}" in result.output
