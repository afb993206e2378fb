"""``ccvae-pyro train --model m2|diva|mvae`` and the research commands on a baseline run."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pyro_ccvae.models import MODELS
from pyro_ccvae_cli.main import main

TINY = ["--num-train", "32", "--batch-size", "16", "--epochs", "1", "--sup-frac", "0.5", "--device", "cpu", "--no-progress"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "m2"
    result = run("train", "--model", "m2", "--out", out, "--z-style-dim", "3", *TINY)
    assert result.exit_code == 0, result.output
    return out


def test_a_baseline_trains_with_its_own_defaults(m2_run):
    model = json.loads((m2_run / "config.json").read_text())["model"]
    defaults = MODELS["m2"].config_class()
    assert model["z_style_dim"] == 3 and model["m2_alpha"] == defaults.m2_alpha and model["label_sum"] == "enumerate"


def test_research_commands_run_or_refuse_in_one_line(m2_run):
    assert run("swap", m2_run, "--images", 2, "--device", "cpu").exit_code == 0
    assert run("generate", m2_run, "--labels", "red=1", "--samples", 2, "--device", "cpu").exit_code == 0
    result = run("traverse", m2_run, "--device", "cpu")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "needs the capability 'traverse', which model 'm2' does not offer" in result.output


def test_an_option_of_another_family_is_one_line(tmp_path):
    result = run("train", "--model", "mvae", "--out", tmp_path / "run", "--k-samples", "4", *TINY)
    assert result.exit_code == 1 and result.output.strip() == "error: --k-samples is not an option of --model mvae"
