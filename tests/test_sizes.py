"""Absurd sizes (issue 19, items 6 and 11): each command estimates the memory its sizes need
before allocating and refuses what cannot fit in one line with the estimate and the option to
lower; running out of memory all the same says which option to lower; an ``--iw-samples`` that
would run for days is refused, one that runs for long is announced. Nothing in the run changes."""
from __future__ import annotations

import hashlib
import inspect
import logging
import shutil
from pathlib import Path

import pyro
import pytest
import torch

from pyro_ccvae import sizes
from pyro_ccvae.analysis import figures, likelihood
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.run_directory import load_run
from pyro_ccvae.training import Trainer, TrainingError, train
from pyro_ccvae.training.loop import Loop
from cli_helpers import cli  # tests/ is on the path of its top-level modules

TINY = ["--num-train", "32", "--batch-size", "16", "--epochs", "1", "--z-style-dim", "3", "--k-samples", "4", "--device", "cpu", "--no-progress"]
#: so large that no machine holds it (the sizes of the issue, 10000000 K samples, are 58 GB: a
#: machine with more memory free would rightly go ahead)
NEVER_FITS = "10000000000"



def one_line_error(result, *fragments: str) -> str:
    """The command failed with one ``error:`` line, its last (train's header may come before it)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert result.exit_code == 1 and errors == lines[-1:], result.output
    assert all(fragment in errors[0] for fragment in fragments), result.output
    return errors[0]


def contents(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")
    }  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sizes") / "run"
    train(TrainConfig.from_options(num_train=32, epochs=1, batch_size=16, k_samples=4, z_style_dim=3, device="cpu"), path, progress=False)
    return path


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(trained, path)
    return path


# --- the module -----------------------------------------------------------------------------


def test_words_for_sizes_and_durations():
    assert sizes.format_bytes(15_360_000_000) == "15.4 GB"
    assert sizes.format_bytes(512) == "512 bytes"
    assert sizes.format_bytes(3.3e18) == "3.3e+03 PB"
    assert sizes.format_seconds(200_000) == "2.3 days"
    assert sizes.format_seconds(45 * 60) == "45 minutes"
    assert sizes.format_seconds(12) == "12 seconds"


def test_the_memory_available_is_read_from_the_machine():
    free = sizes.available_bytes("cpu")
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert free is not None and 0 < free <= total
    assert sizes.available_bytes(torch.device("meta")) is None  # nothing to compare with: no refusal
    sizes.require(1 << 60, "anything", "--nothing", torch.device("meta"))


def test_require_refuses_with_the_estimate_and_the_option():
    sizes.require(1000, "a step", "--k-samples", available=1000)
    with pytest.raises(sizes.SizeError) as error:
        sizes.require(15_360_000_000, "a step", "--k-samples", available=2_000_000_000)
    assert str(error.value) == "a step needs about 15.4 GB of memory, more than the 2 GB available on the CPU; lower --k-samples"
    assert isinstance(error.value, ValueError)  # the command line's one-line errors


def test_a_figure_too_wide_for_any_canvas():
    message = str(pytest.raises(sizes.SizeError, sizes.require_figure, 1, 10**6, 3, 32, "a figure", "--steps").value)
    assert "68,000,004 pixels wide" in message and "at most 123,361 images a row" in message and "lower --steps" in message


def test_the_figure_layout_is_the_figures_module_one():
    assert sizes.GRID_PAD == figures.PAD
    assert sizes.GRID_ZOOM == inspect.signature(figures.save_labelled_grid).parameters["zoom"].default


@pytest.mark.parametrize("error, is_oom", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 15360000000 bytes. Error code 12 (Cannot allocate memory)"), True),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), True),
    (MemoryError(), True),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
    (ValueError("out of memory"), False),
])  # fmt: skip
def test_out_of_memory_errors_are_told_apart(error, is_oom):
    assert sizes.is_out_of_memory(error) is is_oom


def test_out_of_memory_becomes_one_line_naming_the_option():
    with pytest.raises(sizes.SizeError, match=r"^`swap` ran out of memory on the CPU; lower --images$") as caught:
        with sizes.out_of_memory_says("`swap`", "--images"):
            raise MemoryError()
    assert caught.value.__suppress_context__  # the allocator's message is not shown beside it
    with pytest.raises(KeyError):
        with sizes.out_of_memory_says("`swap`", "--images"):
            raise KeyError("other errors pass")


def test_durations_warn_then_refuse(caplog):
    with caplog.at_level(logging.WARNING, logger="pyro_ccvae.sizes"):
        sizes.check_duration(60, "quick", "--x")
        assert not caplog.text
        sizes.check_duration(3 * 3600, "slow", "--x")
    assert "slow will take about 3 hours" in caplog.text and "lower --x" in caplog.text
    message = str(pytest.raises(sizes.SizeError, sizes.check_duration, 3 * 86400, "endless", "--x").value)
    assert "endless would take about 3 days" in message and "lower --x" in message


# --- train ----------------------------------------------------------------------------------


def test_train_refuses_k_samples_that_cannot_fit(tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--out", out, *TINY, "--k-samples", NEVER_FITS)
    one_line_error(result, "a training step with --batch-size 16 and --k-samples 10000000000 needs about", "TB of memory",
                   "available on the CPU; lower --k-samples")  # fmt: skip
    assert not (out / "config.json").exists() and not (out / "checkpoint.pt").exists()


def test_train_refuses_a_batch_that_cannot_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(sizes, "available_bytes", lambda device=None: 1_000_000)  # a machine with 1 MB free
    result = cli("train", "--out", tmp_path / "run", *TINY)
    one_line_error(result, "a training step with --batch-size 16 and --k-samples 4 needs about", "more than the 1 MB available",
                   "lower --batch-size")  # fmt: skip


def test_train_refuses_num_train_that_cannot_fit(tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--out", out, *TINY[2:], "--num-train", "1000000000")
    one_line_error(result, "shapes with --num-train 1000000000", "TB of memory", "lower --num-train")
    assert not (out / "config.json").exists()


@pytest.mark.parametrize("failure", [
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 15360000000 bytes. Error code 12 (Cannot allocate memory)"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
])  # fmt: skip
def test_out_of_memory_in_a_step_names_the_options_and_keeps_the_checkpoint(tmp_path, monkeypatch, failure):
    out = tmp_path / "run"
    train(TrainConfig.from_options(num_train=32, epochs=1, batch_size=16, k_samples=4, z_style_dim=3, device="cpu"), out, progress=False)
    before = contents(out)
    step = Loop._step

    def step_then_fail(self, epoch, number, *args):
        if number == 1:
            raise failure
        return step(self, epoch, number, *args)

    monkeypatch.setattr(Loop, "_step", step_then_fail)
    result = cli("train", "--out", out, "--resume", "--epochs", "2", "--no-progress")
    one_line_error(result, "the training step of epoch 2, batch 2 ran out of memory on the CPU; lower --batch-size or --k-samples",
                   f"the checkpoint after 1 epoch(s) in {out} is kept")  # fmt: skip
    after = contents(out)
    del before["config.json"], after["config.json"]  # a resume records its new --epochs before the first step
    assert after == before


# --- the analysis commands ------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["traverse", "RUN", "--steps", "100000"], ["traverse's figure of square (4 x 100000 images) needs about", "lower --steps (or --images)"]),
    (["traverse", "RUN", "--steps", "3000", "--labels", "red,large"], ["traverse's 2-D figure of red and large (3000 x 3000 images)", "lower --steps"]),
    (["generate", "RUN", "--samples", "100000"], ["generate's figure of 12 row(s) of 100000 images needs about", "lower --samples (or --rows)"]),
    (["generate", "RUN", "--samples", "1000000"], ["generate's figure of 12 row(s) of 1000000 images would be 68,000,004 pixels wide", "lower --samples (or --rows)"]),
    (["intervene", "RUN", "--samples", NEVER_FITS], ["each of intervene's diversity maps (10000000000 draws of 6 images decoded at once) needs about", "lower --samples (or --images)"]),
    (["evaluate", "RUN", "--iw-samples", NEVER_FITS, "--attribute-epochs", "0"], ["the importance-weighted log p(x) with --iw-samples 10000000000 over 6 test images needs about", "lower --iw-samples (or --max-images)"]),
])  # fmt: skip
def test_analysis_commands_refuse_sizes_that_cannot_fit(run_dir, args, fragments):
    before = contents(run_dir)
    result = cli(*[run_dir if a == "RUN" else a for a in args])
    one_line_error(result, *fragments)
    assert contents(run_dir) == before  # nothing written, nothing lost


def test_a_swap_grid_that_cannot_fit(run_dir, monkeypatch):
    monkeypatch.setattr(sizes, "available_bytes", lambda device=None: 1_000_000)
    one_line_error(cli("swap", run_dir), "swap's grid of 6 x 6 images needs about", "more than the 1 MB available", "lower --images")


def test_out_of_memory_in_an_analysis_command_names_its_options(run_dir, monkeypatch):
    from pyro_ccvae.analysis import tasks

    def decode_fails(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 3300000000 bytes")

    monkeypatch.setattr(tasks, "traverse_images", decode_fails)
    before = contents(run_dir)
    one_line_error(cli("traverse", run_dir), "`traverse` ran out of memory on the CPU; lower --steps or --images")
    assert contents(run_dir) == before


def test_iw_samples_for_days_are_refused_and_for_hours_announced(run_dir, monkeypatch, caplog):
    monkeypatch.setattr(likelihood, "TIMED_ABOVE_ROWS", 0)  # time the tiny run's estimate too
    monkeypatch.setattr(sizes, "REFUSE_SECONDS", 1e-6)
    before = contents(run_dir)
    result = cli("evaluate", run_dir, "--iw-samples", "1000", "--attribute-epochs", "0", "--no-progress")
    one_line_error(result, "the importance-weighted log p(x) with --iw-samples 1000 over 6 test images would take about",
                   "lower --iw-samples (or --max-images)")  # fmt: skip
    assert contents(run_dir) == before
    monkeypatch.setattr(sizes, "REFUSE_SECONDS", 1e9)
    monkeypatch.setattr(sizes, "WARN_SECONDS", 1e-6)
    with caplog.at_level(logging.WARNING, logger="pyro_ccvae.sizes"):
        result = cli("evaluate", run_dir, "--iw-samples", "20", "--attribute-epochs", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "--iw-samples 20 over 6 test images will take about" in caplog.text


def test_timing_the_estimate_draws_nothing(trained, monkeypatch):
    """The time is measured on the run itself, with the random state put back: the numbers of
    an evaluation are those it gives without the timing."""
    run = load_run(trained, "cpu")
    analysis = Analysis.from_run(run, "test", progress=False)
    with run.scope():
        pyro.set_rng_seed(3)
        plain = likelihood.importance_weighted(analysis, 8)
        monkeypatch.setattr(likelihood, "TIMED_ABOVE_ROWS", 0)
        pyro.set_rng_seed(3)
        likelihood.check_cost(analysis, 8)
        timed = likelihood.importance_weighted(analysis, 8)
    assert timed == plain


def test_a_refused_training_step_raises_training_error_in_python(tmp_path, monkeypatch):
    monkeypatch.setattr(sizes, "available_bytes", lambda device=None: 1_000_000)
    config = TrainConfig.from_options(num_train=32, epochs=1, batch_size=16, k_samples=4, z_style_dim=3, device="cpu")
    with pytest.raises(TrainingError, match="lower --batch-size"):
        Trainer(config, tmp_path / "run", progress=False)
