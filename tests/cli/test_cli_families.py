"""Every command of the CLI on a tiny run of every model family, through the command line: each
ends with status 0, or (what a family cannot do) with one ``error:`` line; never a traceback.

The library's tasks are tested per family elsewhere (tests/analysis/test_model_families.py);
this is what a user meets: the command's own printing of what the family offered and skipped.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from pyro_ccvae import api
from pyro_ccvae.analysis import sections
from pyro_ccvae.models import MODELS
from pyro_ccvae.run_directory import load_run
from pyro_ccvae_cli.main import main

from cli_helpers import cli  # tests/ is on the path of its top-level modules

FAMILIES = list(MODELS)
#: a run small enough to train in seconds; each family's own size options (MVAE has no d_s).
TINY_DATA = ["--dataset", "shapes", "--num-train", "64", "--image-size", "32", "--labels", "square,red,large"]
TINY_TRAINING = ["--epochs", "1", "--batch-size", "32", "--sup-frac", "0.5", "--device", "cpu", "--no-progress"]
TINY_MODEL = {"ccvae": ["--z-style-dim", "3", "--k-samples", "4"], "m2": ["--z-style-dim", "3"], "diva": ["--z-style-dim", "3"], "mvae": ["--z-dim", "6"]}
CPU = ["--device", "cpu"]
GUIDE_CLASSES = {"ccvae": "MeanFieldGuide", "m2": "M2Guide", "diva": "DIVAGuide", "mvae": "MVAEGuide"}
#: each analysis command with options that keep it to a few images.
ANALYSIS_COMMANDS = {
    "evaluate": ["--iw-samples", "2", "--max-images", "16", "--gen-samples", "8", "--no-progress"],
    "traverse": ["--steps", "3", "--images", "1"],
    "generate": ["--samples", "2"],
    "intervene": ["--images", "2", "--samples", "2"],
    "swap": ["--images", "2"],
}


def assert_success(result) -> None:
    assert result.exit_code == 0, result.output


def assert_one_line_refusal(result, *fragments: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert all(fragment in lines[0] for fragment in fragments), result.output


@pytest.fixture(scope="module")
def judge(tmp_path_factory) -> Path:
    """``train-classifier`` on the runs' labels: the judge of every family's evaluation."""
    out = tmp_path_factory.mktemp("judge") / "classifier"
    assert_success(cli("train-classifier", "--out", out, *TINY_DATA, "--epochs", "1", *CPU, "--no-progress"))
    return out


#: what ``train`` printed for each family's run (filled by the ``runs`` fixture).
TRAIN_OUTPUT: dict[str, str] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """``train`` once per family (module scope: every test reuses these runs)."""
    folder = tmp_path_factory.mktemp("families")
    trained = {}
    for family in FAMILIES:
        out = folder / family
        result = cli("train", "--model", family, "--out", out, *TINY_DATA, *TINY_MODEL[family], *TINY_TRAINING)
        assert_success(result)
        assert f"run saved in {out}" in result.output
        trained[family], TRAIN_OUTPUT[family] = out, result.output
    return trained


@pytest.mark.parametrize("family", FAMILIES)
def test_train_says_what_it_trains_before_the_first_epoch(runs, family):
    # The first lines: the epochs' lines (logged) and the summary come after them.
    header = TRAIN_OUTPUT[family].splitlines()[:4]
    assert header == [
        f"run: {runs[family]} (new, 1 epoch(s))",
        "data: shapes, 32x32, 3 channel(s); 64 training images, 32 labelled (--sup-frac 0.5), 12 validation, 12 test",
        "labels: square, red, large (all binary)",
        f"model: {family}, guide {GUIDE_CLASSES[family]}; device cpu",
    ]


def offers(run_dir: Path, command: str) -> bool:
    """Whether the run's model has every capability the command's task needs."""
    representation = load_run(run_dir, "cpu", load_data=False).representation
    return set(api.TASKS[command].needs) <= representation.capabilities


def test_every_analysis_command_is_tried():
    """A new command of the CLI that reads a run is added to :data:`ANALYSIS_COMMANDS` (and so run on every family)."""
    trainers = {"train", "train-classifier"}  # they write a run or a judge; the judge is tried by the `judge` fixture
    assert set(main.list_commands(click.Context(main))) - trainers == set(ANALYSIS_COMMANDS)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("command", list(ANALYSIS_COMMANDS))
def test_every_analysis_command_runs_or_refuses_in_one_line(runs, judge, family, command):
    run_dir = runs[family]
    extra = ["--classifier", judge] if command == "evaluate" else []
    result = cli(command, run_dir, *CPU, *ANALYSIS_COMMANDS[command], *extra)
    if offers(run_dir, command):
        assert_success(result)
        assert f"metrics in {run_dir / 'metrics.json'}" in result.output
    else:
        assert_one_line_refusal(result, f"model '{family}' does not offer")


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluate_names_every_section_it_skipped(runs, judge, family):
    """A family without a section's capability (M2 and MVAE: no likelihood, no class priors) gets
    the other sections, and one ``skipped`` line per missing one."""
    result = cli("evaluate", runs[family], *CPU, *ANALYSIS_COMMANDS["evaluate"], "--classifier", judge)
    assert_success(result)
    metrics = json.loads((runs[family] / "metrics.json").read_text())
    skipped = metrics["evaluation"]["skipped"]
    printed = [line for line in result.output.splitlines() if line.startswith("skipped ")]
    assert printed == [f"skipped {section}: {why}" for section, why in skipped.items()]
    assert ("log p(x) >=" in result.output) == ("likelihood" not in skipped)
    assert "accuracy (mean over labels)" in result.output and "conditional-generation accuracy" in result.output
    # every family offers interventions and generation: edit locality and the judge's uncertainty for each;
    # FID is skipped with where its weights are published (no --fid-weights)
    assert {"edit_locality", "judge_uncertainty"} <= metrics.keys() and "fid" not in metrics
    assert "edit locality:" in result.output and "judge's uncertainty (MI" in result.output
    assert "torch-fidelity/releases" in skipped["fid"]
    # the table of sections decides, for the computation and the printing alike
    capabilities = load_run(runs[family], "cpu", load_data=False).representation.capabilities
    assert set(sections.missing(capabilities)) | {"fid"} == set(skipped)
    assert set(sections.NAMES) - set(skipped) <= metrics.keys() and not set(skipped) & metrics.keys()
    for line in sections.terminal_lines(metrics):
        assert line in result.output.splitlines()


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluate_without_a_judge_says_it_dropped_the_judged_results(runs, judge, family):
    run_dir = runs[family]
    assert_success(cli("evaluate", run_dir, *CPU, *ANALYSIS_COMMANDS["evaluate"], "--classifier", judge))
    judged = [s for s in ("single_interventions", "characteristic_swap", "generation_accuracy") if s in json.loads((run_dir / "metrics.json").read_text())]
    assert judged  # every family offers some judged section
    result = cli("evaluate", run_dir, *CPU, *ANALYSIS_COMMANDS["evaluate"], "--attribute-epochs", "0")
    assert_success(result)
    assert f"dropped the judged results of an earlier evaluation ({', '.join(judged)}): this one had no judge" in result.output
    assert not set(judged) & set(json.loads((run_dir / "metrics.json").read_text()))
    again = cli("evaluate", run_dir, *CPU, *ANALYSIS_COMMANDS["evaluate"], "--attribute-epochs", "0")
    assert_success(again)
    assert "dropped" not in again.output  # nothing judged was left to drop


def test_traverse_draws_only_the_labels_asked_for(runs):
    """--labels red,large without --pairs: the 2-D traversal is red against large, not the run's first two labels."""
    result = cli("traverse", runs["ccvae"], *CPU, "--labels", "red,large", "--steps", "3", "--images", "1")
    assert_success(result)
    written = sorted(Path(line[len("wrote ") :]).name for line in result.output.splitlines() if line.startswith("wrote "))
    assert written == ["traverse_large.png", "traverse_pair_red_large.png", "traverse_red.png"]
    one = cli("traverse", runs["ccvae"], *CPU, "--labels", "square", "--steps", "3", "--images", "1")
    assert [line for line in one.output.splitlines() if line.startswith("wrote ")] == [f"wrote {runs['ccvae'] / 'figures' / 'traverse_square.png'}"]


def test_evaluate_on_a_baseline_through_the_installed_entry_point(runs, judge):
    """The reported failure, end to end in a process of its own: ``python -m pyro_ccvae_cli``."""
    import subprocess
    import sys

    args = ["evaluate", runs["m2"], *CPU, *ANALYSIS_COMMANDS["evaluate"], "--classifier", judge]
    result = subprocess.run([sys.executable, "-m", "pyro_ccvae_cli", *map(str, args)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "skipped likelihood: needs the capability" in result.stdout
