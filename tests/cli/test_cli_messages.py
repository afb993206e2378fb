"""Messages that misled, and silences (issue 19, items 12 and 13), at the command line: a float
option that is no number is refused while parsing, naming the option; a guide's rank that cannot
work says so; ``--tensorboard`` without its package leaves no run folder behind."""
from __future__ import annotations

import sys

import pytest

from cli_helpers import cli  # tests/ is on the path of its top-level modules

TINY = ["--num-train", "32", "--batch-size", "16", "--epochs", "1", "--z-style-dim", "3", "--k-samples", "4", "--device", "cpu", "--no-progress"]



def assert_one_line_error(result, *fragments: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert all(fragment in lines[0] for fragment in fragments), result.output


@pytest.mark.parametrize(
    "args, option",
    [
        (["train", "--out", "OUT", "--classifier-weight", "nan"], "--classifier-weight"),
        (["train", "--out", "OUT", "--lr", "inf"], "--lr"),
        (["train", "--out", "OUT", "--sup-frac", "-inf"], "--sup-frac"),
        (["train", "--out", "OUT", "--model", "m2", "--m2-alpha", "NaN"], "--m2-alpha"),
        (["train", "--out", "OUT", "--model", "diva", "--diva-alpha", "nan"], "--diva-alpha"),
        (["train-classifier", "--out", "OUT", "--lr", "nan"], "--lr"),
        (["traverse", "OUT", "--extend", "inf"], "--extend"),
    ],
)
def test_a_float_that_is_no_number_is_refused_while_parsing(tmp_path, args, option):
    out = tmp_path / "out"
    result = cli(*[out if a == "OUT" else a for a in args])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and "is not a finite number" in result.output
    assert not out.exists()  # refused before anything was made


@pytest.mark.parametrize("rank", ["0", "-1"])
def test_a_low_rank_guide_without_rank_says_so(tmp_path, rank):
    result = cli("train", "--out", tmp_path / "run", "--guide", "lowrank", "--guide-option", f"rank={rank}", *TINY)
    assert_one_line_error(result, f"the low-rank guide needs rank >= 1 (--guide-option rank=N), got {rank}")


def test_tensorboard_without_its_package_leaves_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    out = tmp_path / "runs" / "new"
    result = cli("train", "--out", out, "--tensorboard", *TINY)
    assert_one_line_error(result, "--tensorboard needs the tensorboard package")
    assert not out.exists() and not out.parent.exists()
