"""Every analysis command end to end on a tiny trained categorical CCVAE: a data set of bars with
a 4-class label (where the bar stands), a 3-class one (its shade) and a binary one (a frame),
whose factors are known (attributes and a renderer), so ``evaluate`` also trains its
ground-truth judge and scores nuisance transfer."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae import api
from pyro_ccvae.analysis.classifier import ClassifierConfig, IndependentClassifier, train_classifier
from pyro_ccvae.checkpoint import atomic_save
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.data import DATASETS, DataSplits, ImageSet
from pyro_ccvae.training import train
from pyro_ccvae_cli.main import main

from .test_commands import assert_one_line_error, assert_report_complete, figures_of

DATASET = "test-categorical-bars"
NAMES = ("place", "shade", "frame")
NUM_CLASSES = (4, 3, 2)
ATTRIBUTES = (*NAMES, "top")  # the bar's top row is the nuisance
FAST = ["--device", "cpu"]


def render(attributes: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` (place, shade, frame, top in [0, 1]) -> uint8 ``[N, 1, 32, 32]``: a vertical bar
    at one of four places, in one of three shades, from row ``2 + 10 top`` down, maybe a frame."""
    images = torch.zeros(len(attributes), 1, 32, 32, dtype=torch.uint8)
    for i, (place, shade, frame, top) in enumerate(attributes.tolist()):
        left, first = 2 + 7 * int(place), 2 + int(10 * top)
        images[i, :, first:30, left : left + 5] = 120 + 60 * int(shade)
        if frame:
            images[i, :, [0, -1], :] = images[i, :, :, [0, -1]] = 255
    return images


def bars(options) -> DataSplits:
    generator = torch.Generator().manual_seed(options.seed)

    def split(n):
        classes = torch.stack([torch.randint(k, (n,), generator=generator) for k in NUM_CLASSES], 1).float()
        attributes = torch.cat([classes, torch.rand(n, 1, generator=generator)], 1)
        return ImageSet(
            render(attributes), classes, torch.ones(n, 3, dtype=torch.bool), NAMES, attributes=attributes, num_classes=NUM_CLASSES
        )

    return DataSplits(split(options.num_train or 256), split(64), split(64), "bars", attribute_names=ATTRIBUTES, render=render)


@pytest.fixture(scope="module", autouse=True)
def _dataset():
    DATASETS[DATASET] = bars
    yield
    del DATASETS[DATASET]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("categorical") / "run"
    config = TrainConfig.from_options(
        dataset=DATASET, num_train=256, epochs=2, batch_size=64, k_samples=5, z_style_dim=4, z_char_dim=2, device="cpu", seed=1,
    )  # fmt: skip
    train(config, path, progress=False)
    return path


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("categorical") / "judge"
    train_classifier(ClassifierConfig(dataset=DATASET, num_train=256, epochs=2, device="cpu", seed=2), path, progress=False)
    return path


def invoke(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_evaluate_with_a_categorical_judge(run_dir, judge_dir):
    out = invoke("evaluate", run_dir, *FAST, "--iw-samples", 3, "--classifier", judge_dir, "--gen-samples", 16, "--no-progress")
    written = figures_of(out)
    assert {p.name for p in written} == {
        "reconstructions.png", "latent_densities.png", "intervention_matrix.png", "confusion_place.png", "confusion_shade.png",
        "locality.png",
    }  # fmt: skip
    m = json.loads((run_dir / "metrics.json").read_text())
    cls = m["classification"]
    assert [len(cls["confusion"][n]) for n in NAMES] == list(NUM_CLASSES)
    assert all(sum(map(sum, cls["confusion"][n])) == cls["seen"][n] for n in NAMES)
    assert set(cls["auroc_per_class"]) == {"place", "shade"} and len(cls["auroc_per_class"]["place"]) == 4
    assert all(0 < cls["chance"][n] <= 1 and 0 <= cls["accuracy"][n] <= 1 for n in NAMES)
    separation = m["latent_separation"]
    assert set(separation["wasserstein_matrix"]) == {"place", "shade"}
    place = separation["wasserstein_matrix"]["place"]
    assert all(place[a][b] == place[b][a] and place[a][a] == 0 for a in range(4) for b in range(4))
    si = m["single_interventions"]
    assert set(si["intended_rate_by_class"]) == {"place", "shade"} and len(si["intended_rate_by_class"]["shade"]) == 3
    assert all(0 <= si["exact_rate"][n] <= si["intended_rate"][n] <= 1 for n in NAMES)
    requested = m["generation_accuracy"]["categorical"]
    assert requested["chance"] == {"place": 0.25, "shade": pytest.approx(1 / 3)}
    assert all(0 <= r <= 1 for rates in requested["requested_class_rate"].values() for r in rates)
    assert set(m["evaluation"]["judge_test_chance"]) == set(NAMES)
    assert "requested class read by the judge" in out
    assert_report_complete(run_dir, written)
    html = (run_dir / "report.html").read_text()
    assert "<p>confusion: place (rows: the true class; columns: the predicted class)</p>" in html


def test_evaluate_judges_categorical_ground_truth(run_dir):
    invoke("evaluate", run_dir, *FAST, "--iw-samples", 2, "--max-images", 24, "--attribute-epochs", 1, "--gen-samples", 8, "--no-progress")
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["evaluation"]["judge"].startswith("ground-truth attribute classifier")
    assert 0 <= m["nuisance_transfer"]["follow_rate"] <= 1 and m["nuisance_transfer"]["num_images"] == 24
    assert set(m["single_interventions"]["intended_rate_by_class"]) == {"place", "shade"}


@pytest.mark.parametrize(
    "args, names",
    [
        (["traverse", "--steps", 3, "--images", 2], ["traverse_place.png", "traverse_shade.png", "traverse_frame.png", "traverse_pair_place_shade.png"]),
        (["generate", "--labels", "place=3,shade=0", "--samples", 3], ["generate_place_3_shade_0.png"]),
        (["intervene", "--images", 2, "--samples", 3, "--draws", 3], ["intervene.png", "diversity.png", "class_draws_place.png", "class_draws_shade.png"]),
        (["swap", "--images", 3], ["swap.png"]),
    ],
    ids=["traverse", "generate", "intervene", "swap"],
)
def test_figure_commands_on_categorical_labels(run_dir, args, names):
    written = figures_of(invoke(args[0], run_dir, *FAST, *args[1:]))
    assert sorted(p.name for p in written) == sorted(names)
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert_report_complete(run_dir, written)


def test_class_arguments_out_of_range_are_one_line(run_dir):
    assert_one_line_error(["generate", run_dir, *FAST, "--labels", "place=4"], "label 'place' has the classes 0..3")
    assert_one_line_error(["generate", run_dir, *FAST, "--labels", "frame=2"], "expected NAME=0 or NAME=1")


def test_a_judge_that_reads_the_labels_as_binary_is_refused(run_dir, tmp_path):
    """A judge trained before the labels were categorical (no label spec saved: every label binary)."""
    net = IndependentClassifier(list(NAMES), 1, 32)
    atomic_save({"state_dict": net.state_dict(), "label_names": list(NAMES), "channels": 1, "image_size": 32}, tmp_path / "classifier.pt")
    assert_one_line_error(
        ["evaluate", run_dir, *FAST, "--classifier", tmp_path, "--iw-samples", 1, "--max-images", 4],
        "reads label 'place' as 2 classes, the run has 4; train one",
    )


def test_the_api_on_a_categorical_run(run_dir):
    loaded = api.load(run_dir)
    x = loaded.images(3)
    assert loaded.num_classes == list(NUM_CLASSES)
    assert loaded.predict(x).shape == (3, 3, 4)
    assert loaded.intervene(x, "place", 3).shape == x.shape
    assert loaded.traverse(x[:1], "place", steps=3).shape[:2] == (1, 7)  # the path through the 4 class means
    with pytest.raises(ValueError, match=r"its classes are 0\.\.2"):
        loaded.generate({"shade": 3}, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_categorical_commands_on_cuda(run_dir, judge_dir):
    args = ["--device", "cuda"]
    invoke("evaluate", run_dir, *args, "--iw-samples", 2, "--classifier", judge_dir, "--gen-samples", 8, "--no-progress")
    invoke("evaluate", run_dir, *args, "--iw-samples", 2, "--max-images", 16, "--attribute-epochs", 1, "--gen-samples", 8, "--no-progress")
    for command in (["traverse", "--steps", 3], ["generate", "--labels", "place=2"], ["intervene", "--images", 2, "--samples", 3], ["swap"]):
        invoke(command[0], run_dir, *args, *command[1:])
