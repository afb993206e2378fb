"""Every analysis command through the CLI: the files it promises, metrics in range, a report
that references only files that exist, and one-line errors for bad input."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae_cli.main import main

FAST = ["--device", "cpu"]


def invoke(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def report_images(run_dir: Path) -> list[str]:
    parser = _Images()
    parser.feed((run_dir / "report.html").read_text())
    return parser.sources


def assert_report_complete(run_dir: Path, figures) -> None:
    sources = report_images(run_dir)
    for src in sources:
        assert not Path(src).is_absolute() and (run_dir / src).is_file(), src
    assert {f"figures/{Path(f).name}" for f in figures} <= set(sources)
    assert set(sources) == {f"figures/{p.name}" for p in (run_dir / "figures").glob("*.png")}


def figures_of(output: str) -> list[Path]:
    return [Path(line[len("wrote ") :]) for line in output.splitlines() if line.startswith("wrote ")]


def test_evaluate(run_dir, classifier_dir):
    out = invoke("evaluate", run_dir, *FAST, "--iw-samples", 4, "--classifier", classifier_dir, "--gen-samples", 20, "--no-progress")
    written = figures_of(out)
    assert {p.name for p in written} == {"reconstructions.png", "latent_densities.png", "intervention_matrix.png", "locality.png"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    m = json.loads((run_dir / "metrics.json").read_text())
    cls = m["classification"]
    for key in ("accuracy", "auroc"):
        assert all(v is None or 0 <= v <= 1 for v in cls[key].values())
    assert 0 <= cls["accuracy_mean"] <= 1
    lik = m["likelihood"]
    assert lik["num_samples"] == 4 and lik["log_px_iwae"] >= lik["log_px_elbo"]
    assert lik["bits_per_dim_px_iwae"] > 0
    assert all(v is None or v >= 0 for v in m["latent_separation"]["wasserstein"].values())
    si = m["single_interventions"]
    assert si["condition_number"] is None or si["condition_number"] >= 1
    assert m["evaluation"]["judge"] == "independent classifier"
    assert m["characteristic_swap"]["log_prob_change_mean"] >= 0
    assert 0 <= m["generation_accuracy"]["accuracy_mean"] <= 1
    health = m["health"]
    assert health["split"] == "test" and health["num_images"] == cls["num_images"]
    assert 0 < health["reconstruction"]["model_mae"] < 1 and 0 < health["reconstruction"]["mean_image_mae"] < 1
    assert isinstance(health["warnings"], list)
    assert [line[len("warning: "):] for line in out.splitlines() if line.startswith("warning: ")] == health["warnings"]
    judge = json.loads((classifier_dir / "summary.json").read_text())["test_accuracy"]
    assert m["evaluation"]["judge_test_accuracy"] == judge
    assert m["evaluation"]["unreliable_labels"] == [n for n, a in judge.items() if a < 0.9]
    assert m["single_interventions"]["unreliable_labels"] == m["evaluation"]["unreliable_labels"]
    assert_report_complete(run_dir, written)


def test_evaluate_judges_shapes_with_a_ground_truth_classifier(run_dir):
    """No --classifier on shapes: a classifier trained on the true attributes judges interventions,
    swaps and generation; the renderer judges nuisance transfer."""
    invoke("evaluate", run_dir, *FAST, "--iw-samples", 2, "--max-images", 20, "--attribute-epochs", 1, "--no-progress")
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["evaluation"]["judge"].startswith("ground-truth attribute classifier")
    assert (run_dir / "attribute_classifier" / "classifier.pt").is_file()
    assert m["classification"]["num_images"] == 20
    assert all(0 <= v <= 1 for v in m["single_interventions"]["exact_rate"].values())
    assert m["characteristic_swap"]["num_images"] == 20
    assert 0 <= m["generation_accuracy"]["accuracy_mean"] <= 1
    transfer = m["nuisance_transfer"]
    assert 0 <= transfer["follow_rate"] <= 1 and transfer["num_images"] == 20
    assert transfer["target_mae"] > 0 and transfer["source_mae"] > 0


@pytest.mark.parametrize(
    "args, names",
    [
        (["traverse", "--labels", "red,large", "--steps", 5, "--pairs", "red:large,square:stripe", "--images", 2],
         ["traverse_red.png", "traverse_large.png", "traverse_pair_red_large.png", "traverse_pair_square_stripe.png"]),
        (["generate", "--labels", "red=1,large=0;square=1", "--labels", "stripe=0", "--samples", 3, "--rows", 2],
         ["generate_red_1_large_0__square_1__stripe_0.png"]),
        (["generate", "--samples", 2], ["generate.png"]),
        (["intervene", "--labels", "red,stripe", "--images", 3, "--samples", 4], ["intervene_red__stripe.png", "diversity_red__stripe.png"]),
        (["intervene", "--images", 2, "--samples", 3], ["intervene.png", "diversity.png"]),
        (["swap", "--images", 3], ["swap.png"]),
    ],
    ids=["traverse", "generate", "generate-default", "intervene", "intervene-default", "swap"],
)
def test_figure_commands(run_dir, args, names):
    out = invoke(args[0], run_dir, *FAST, *args[1:])
    written = figures_of(out)
    assert sorted(p.name for p in written) == sorted(names)
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert_report_complete(run_dir, written)


def test_generate_for_other_labels_keeps_the_first_figure(run_dir):
    first = figures_of(invoke("generate", run_dir, *FAST, "--labels", "square=1", "--samples", 2))
    second = figures_of(invoke("generate", run_dir, *FAST, "--labels", "square=0", "--samples", 2))
    assert first != second and all(p.is_file() for p in first + second)
    assert json.loads((run_dir / "metrics.json").read_text())["generation"]["figure"] == second[0].name


def test_traverse_pair_image(run, run_dir):
    from pyro_ccvae.analysis.context import Analysis
    from pyro_ccvae.analysis.tasks import VISIBLE_CANDIDATES

    invoke("traverse", run_dir, *FAST, "--labels", "red", "--pairs", "red:large", "--steps", 3, "--images", 1, "--image", 5)
    assert json.loads((run_dir / "metrics.json").read_text())["traversal"]["pair_image"] == {"index": 5, "chosen": "--image"}
    invoke("traverse", run_dir, *FAST, "--labels", "red", "--pairs", "red:large", "--steps", 3, "--images", 1)
    chosen = json.loads((run_dir / "metrics.json").read_text())["traversal"]["pair_image"]["index"]
    analysis = Analysis.from_run(run, "test", max_images=VISIBLE_CANDIDATES, progress=False)
    recon = analysis.reconstruct(torch.arange(len(analysis)))
    spread = (recon - recon.flatten(-2).median(-1).values[..., None, None]).abs().mean((1, 2, 3))
    assert spread[chosen] == spread.max()
    assert_one_line_error(["traverse", run_dir, *FAST, "--image", 10**6], "--image must be a test image index")


def test_intervene_and_traverse_metrics(run_dir):
    invoke("intervene", run_dir, *FAST, "--images", 2, "--samples", 3)
    invoke("traverse", run_dir, *FAST, "--steps", 3, "--pairs", "", "--images", 1)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert all(v >= 0 for v in m["diversity"]["mean_pixel_variance"].values())
    assert m["traversal"]["steps"] == 3


def test_train_classifier(tmp_path):
    out = tmp_path / "clf"
    invoke("train-classifier", "--out", out, "--num-train", 64, "--epochs", 1, "--labels", "red,large", "--device", "cpu", "--no-progress")
    assert {p.name for p in out.iterdir()} >= {"classifier.pt", "config.json", "summary.json"}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test_accuracy"]) == {"red", "large"}
    assert all(0 <= v <= 1 for v in summary["test_accuracy"].values())


COMMANDS = [
    ["evaluate"], ["traverse"], ["generate"], ["intervene"], ["swap"],
]  # fmt: skip


def assert_one_line_error(args, fragment: str) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_missing_run_directory(tmp_path, command):
    assert_one_line_error([*command, tmp_path / "nope", *FAST], "does not exist")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_missing_checkpoint(incomplete_run, command):
    assert_one_line_error([*command, incomplete_run, *FAST], "checkpoint.pt is missing")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["traverse", "--labels", "red,nose"], "unknown label 'nose'"),
        (["traverse", "--pairs", "red"], "expected NAME:NAME"),
        (["generate", "--labels", "red=yes"], "NAME=0 or NAME=1"),
        (["intervene", "--labels", "red,,large"], "bad --labels"),
        (["evaluate", "--classifier", "/nonexistent/clf"], "holds no classifier.pt"),
        (["evaluate", "--iw-samples", 0, "--attribute-epochs", 0], "--iw-samples"),
    ],
)
def test_bad_arguments(run_dir, args, fragment):
    assert_one_line_error([args[0], run_dir, *FAST, *args[1:]], fragment)


def test_classifier_with_other_labels_is_refused(run_dir, tmp_path):
    out = tmp_path / "clf"
    invoke("train-classifier", "--out", out, "--num-train", 32, "--epochs", 1, "--labels", "red", "--device", "cpu", "--no-progress")
    assert_one_line_error(["evaluate", run_dir, *FAST, "--classifier", out, "--iw-samples", 1, "--max-images", 4], "has no label(s) square")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_commands_on_cuda(run_dir, classifier_dir):
    args = ["--device", "cuda"]
    invoke("evaluate", run_dir, *args, "--iw-samples", 3, "--classifier", classifier_dir, "--gen-samples", 10, "--no-progress")
    for command in ("traverse", "generate", "intervene", "swap"):
        invoke(command, run_dir, *args)


def test_evaluate_without_judge_drops_the_old_matrix(run_dir, classifier_dir):
    invoke("evaluate", run_dir, *FAST, "--iw-samples", 1, "--max-images", 8, "--classifier", classifier_dir, "--gen-samples", 4, "--no-progress")
    assert (run_dir / "figures" / "intervention_matrix.png").is_file()
    invoke("evaluate", run_dir, *FAST, "--iw-samples", 1, "--max-images", 8, "--attribute-epochs", 0, "--no-progress")
    m = json.loads((run_dir / "metrics.json").read_text())
    assert "single_interventions" not in m and m["evaluation"]["judge"] is None
    assert not (run_dir / "figures" / "intervention_matrix.png").exists()
    assert "intervention_matrix" not in (run_dir / "report.html").read_text()
