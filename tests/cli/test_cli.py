"""The ``ccvae-pyro train`` command: options reach the library, bad input is one clean line."""
import json

import pytest
from click.testing import CliRunner

from pyro_ccvae_cli.main import main

TINY = ["--num-train", "64", "--batch-size", "32", "--k-samples", "4", "--z-style-dim", "3", "--no-progress"]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_then_resume(tmp_path):
    out = tmp_path / "run"
    result = run("train", "--out", str(out), "--epochs", "1", "--sup-frac", "0.5", "--guide", "lowrank", *TINY)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert (config["guide"]["name"], config["optimisation"]["sup_frac"], config["model"]["k_samples"]) == ("lowrank", 0.5, 4)
    result = run("train", "--out", str(out), "--resume", "--epochs", "2", *TINY)
    assert result.exit_code == 0, result.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--sup-frac", "1.5"], ["--sup-frac", "[0, 1]"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--k-samples", "0"], ["--k-samples"]),
        (["--device", "cuda"], ["no CUDA", "--device cpu"]),
        (["--device", "tpu"], ["device"]),
        (["--guide", "nosuchguide"], ["nosuchguide", "meanfield"]),
        (["--guide", "no_such_module:Guide"], ["no_such_module"]),
        (["--guide", "pyro_ccvae.guides:NoSuchGuide"], ["NoSuchGuide"]),
        (["--labels", "square,not_a_label"], ["not_a_label"]),
    ],
)
def test_bad_options_are_one_line(tmp_path, args, fragments):
    assert_one_line_error(run("train", "--out", str(tmp_path / "run"), *TINY, *args), *fragments)


def test_resume_refuses_to_change_the_run_s_options(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--out", str(out), "--epochs", "1", "--lr", "0.002", *TINY).exit_code == 0
    # Options left at their defaults do not clash with the run's (here --lr 0.002) ...
    assert run("train", "--out", str(out), "--resume", "--epochs", "2", *TINY).exit_code == 0
    # ... but an option given again with another value is an error, not silently ignored.
    result = run("train", "--out", str(out), "--resume", "--epochs", "3", "--lr", "0.01", *TINY)
    assert_one_line_error(result, "--lr cannot change when resuming", "0.002")
    result = run("train", "--out", str(out), "--resume", "--epochs", "3", "--reparameterised-classifier", *TINY)
    assert_one_line_error(result, "--reparameterised-classifier cannot change")
    # Where the data lie may change (a run moved to another machine), and is kept.
    cache = tmp_path / "cache"
    assert run("train", "--out", str(out), "--resume", "--epochs", "3", "--cache-dir", str(cache), *TINY).exit_code == 0
    assert json.loads((out / "config.json").read_text())["data"]["cache_dir"] == str(cache)


def test_resume_without_a_run_is_one_line(tmp_path):
    assert_one_line_error(run("train", "--out", str(tmp_path / "none"), "--resume", *TINY), "cannot resume")


def test_real_data_set_without_its_folder_is_one_line(tmp_path):
    result = run("train", "--dataset", "chexpert", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "CheXpert")


def test_cli_is_not_a_generic_top_level_module():
    import importlib.util

    assert importlib.util.find_spec("pyro_ccvae_cli") is not None
    spec = importlib.util.find_spec("cli")
    assert spec is None or "pyro_ccvae" not in str(spec.origin)


def test_the_command_exits_with_click_s_status_and_delivers_its_output(tmp_path):
    """``run`` ends the process without the interpreter's teardown: the exit status and every
    line written to a pipe must still arrive, and the run's files be complete."""
    import subprocess
    import sys

    def ccvae(*args):
        return subprocess.run([sys.executable, "-m", "pyro_ccvae_cli", *args], capture_output=True, text=True, timeout=300)

    assert ccvae("--help").returncode == 0
    unknown = ccvae("no-such-command")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr
    bad = ccvae("train", "--epochs", "0", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: ")
    out = tmp_path / "run"
    done = ccvae("train", "--out", str(out), "--epochs", "1", *TINY)
    assert done.returncode == 0, done.stderr
    assert "run saved in" in done.stdout + done.stderr
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    json.loads((out / "summary.json").read_text())


def commands():
    import importlib

    from pyro_ccvae_cli.main import COMMANDS

    return {name: getattr(importlib.import_module(f"pyro_ccvae_cli.{module}"), attribute) for name, (module, attribute, _) in COMMANDS.items()}


def test_every_option_of_every_command_has_help():
    import click

    for name, command in commands().items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and param.help.strip(), f"{name} {param.opts[0]} has no help"


def test_no_help_text_is_copied_between_commands():
    """Two commands show the same help only for an option they share one declaration of: the
    data and run options of the configs and the command line's own (threads, progress bars,
    trusting a run's code); any other option is described for its command."""
    import dataclasses

    import click

    from pyro_ccvae.config import DataConfig, RunSection, option_flag

    shared = {option_flag(f) for kind in (DataConfig, RunSection) for f in dataclasses.fields(kind)} | {"--threads", "--no-progress", "--trust-run"}
    where: dict[str, set] = {}
    for name, command in commands().items():
        for param in command.params:
            if isinstance(param, click.Option) and param.opts[0] not in shared:
                where.setdefault(param.help, set()).add(name)
    copied = {text: names for text, names in where.items() if len(names) > 1}
    assert not copied, copied


def test_train_help_lists_every_option_under_its_heading():
    import click

    from pyro_ccvae.fields import OPTION_GROUPS
    from pyro_ccvae_cli.train import train

    options = [param for param in train.params if isinstance(param, click.Option)]
    assert all(getattr(param, "group", None) in OPTION_GROUPS for param in options), [p.opts for p in options if not getattr(p, "group", None)]
    sections: dict[str, str] = {}  # heading -> the lines under it
    heading = None
    for line in run("train", "--help").output.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            heading = line[:-1]
            sections[heading] = ""
        elif heading is not None:
            sections[heading] += line + "\n"
    assert list(sections) == [
        "Run", "Model", "Objective (CCVAE only)", "M2 only", "DIVA only", "MVAE only", "Guide", "Data set",
        "CheXpert only", "CelebA only", "Optimisation", "Execution", "Other options",
    ]  # fmt: skip
    for flag, heading in [("--m2-alpha", "M2 only"), ("--views", "CheXpert only"), ("--lr", "Optimisation"), ("--threads", "Execution"), ("--out", "Run")]:
        assert f"  {flag} " in sections[heading], (flag, sections[heading])
