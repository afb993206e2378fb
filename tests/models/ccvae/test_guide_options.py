"""Guide options (``--guide-option NAME=VALUE``, ``guide.options`` in config.json) reach the guide's
constructor, typed from it; a name it does not take is a one-line error; old configs still load."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.models.ccvae.guides import FlowGuide, GuideError, LowRankGuide, build_guide, guide_options
from pyro_ccvae.run_directory import config_from_json, load_run, read_config
from pyro_ccvae_cli.main import main

DIMS = dict(num_labels=3, z_char_dim=1, z_style_dim=4, channels=1, image_size=32)
TINY = ["--num-train", "64", "--batch-size", "32", "--k-samples", "4", "--z-style-dim", "3", "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def one_line(error: Exception, *fragments: str) -> None:
    message = str(error)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_options_are_typed_from_the_constructor():
    # annotation (rank: int), annotation with a float default, Optional[float] with None
    assert guide_options("lowrank", {"rank": "8"}) == {"rank": 8}
    assert guide_options("flow", {"num_flows": "1", "bound": "3.5", "count_bins": 5}) == {"num_flows": 1, "bound": 3.5, "count_bins": 5}
    assert guide_options("fullrank", {"off_diagonal_scale": "none"}) == {"off_diagonal_scale": None}
    assert guide_options("fullrank", {"off_diagonal_scale": "0"}) == {"off_diagonal_scale": 0.0}
    assert guide_options("meanfield", {}) == {} and guide_options("meanfield", None) == {}
    # a user's guide by import path: typed from its default (df: float = 4.0)
    assert guide_options(f"{__name__}:StudentGuide", {"df": "3"}) == {"df": 3.0}


def StudentGuide(num_labels, z_char_dim, z_style_dim, channels, image_size, df=4.0):  # noqa: N802 - a factory
    return (num_labels, df)


def test_options_reach_the_constructor():
    guide = build_guide("lowrank", {"rank": "3"}, **DIMS)
    assert isinstance(guide, LowRankGuide) and guide.rank == 3 and guide.sizes[-1] == DIMS["z_style_dim"] * 3
    flow = build_guide("flow", {"num_flows": 3, "count_bins": 4}, **DIMS)
    assert isinstance(flow, FlowGuide) and len(flow.style_flows) == 3 and flow.char_spline.count_bins == 4


@pytest.mark.parametrize(
    "spec, options, fragments",
    [
        ("lowrank", {"rnak": "8"}, ["'lowrank'", "'rnak'", "its options: rank"]),
        ("meanfield", {"rank": "8"}, ["'meanfield'", "'rank'", "its options: none"]),
        ("flow", {"hidden": "8"}, ["'hidden'", "bound, context_dim, count_bins, hidden_dim, num_flows"]),
        ("lowrank", {"rank": "eight"}, ["rank='eight'", "int"]),
        ("lowrank", {"rank": 2.5}, ["rank=2.5", "int"]),
        ("flow", {"num_flows": "0"}, ["'flow'", "num_flows"]),  # the guide's own check, in one line
    ],
)
def test_a_wrong_option_is_one_line(spec, options, fragments):
    with pytest.raises(GuideError) as e:
        build_guide(spec, options, **DIMS)
    one_line(e.value, *fragments)


def test_a_family_without_guide_options_refuses_them():
    from pyro_ccvae.models.base import ModelFamily

    family = ModelFamily()
    family.name = "plain"
    assert family.guide_options("anything", {}) == {}
    with pytest.raises(ValueError) as e:
        family.guide_options("anything", {"rank": "2"})
    one_line(e.value, "'plain'", "--guide-option", "rank")


def test_config_carries_options_and_old_configs_load():
    config = TrainConfig.from_options(guide="lowrank", guide_option={"rank": 2})
    assert config.guide.options == {"rank": 2}
    raw = {"version": 2, **config.to_dict()}
    assert config_from_json(json.loads(json.dumps(raw))).guide.options == {"rank": 2}
    del raw["guide"]["options"]  # a config.json written before guide options
    assert config_from_json(raw).guide.options == {}
    raw["guide"]["optoins"] = {}  # still strict about keys it does not know
    with pytest.raises(ValueError, match="unknown key guide.optoins"):
        config_from_json(raw)
    assert TrainConfig.from_legacy({"guide": "lowrank", "sup_frac": 0.5}).guide.options == {}


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_guide_options_reach_the_guide_and_the_run(tmp_path):
    out = tmp_path / "run"
    result = run("train", "--out", out, "--epochs", 1, "--guide", "lowrank", "--guide-option", "rank=2", *TINY)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["guide"] == {"name": "lowrank", "options": {"rank": 2}}
    assert read_config(out).guide.options == {"rank": 2}
    assert load_run(out, load_data=False).guide.rank == 2  # the run rebuilds the guide with them
    # the estimator's counts reach metrics.jsonl (64 images, every label seen: 64 weighted draws)
    epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert epoch["weighted_draws"] == 64 and 0 <= epoch["capped_weights"] <= 64
    # The same option again on resume is no change; another value is refused.
    assert run("train", "--out", out, "--resume", "--epochs", 2, "--guide-option", "rank=2", *TINY).exit_code == 0
    result = run("train", "--out", out, "--resume", "--epochs", 3, "--guide-option", "rank=3", *TINY)
    assert_one_line_error(result, "--guide-option cannot change when resuming")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--guide", "lowrank", "--guide-option", "rnak=2"], ["'rnak'", "its options: rank"]),
        (["--guide-option", "rank=2"], ["'meanfield'", "'rank'"]),
        (["--guide", "lowrank", "--guide-option", "rank"], ["NAME=VALUE"]),
    ],
)
def test_cli_bad_guide_options_are_one_line(tmp_path, args, fragments):
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "run"), *TINY, *args])
    if "NAME=VALUE" in fragments:  # click's own usage error
        assert result.exit_code == 2 and "expected NAME=VALUE" in result.output
        return
    assert_one_line_error(result, *fragments)
