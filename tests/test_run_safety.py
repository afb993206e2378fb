"""A run directory survives NaNs, damaged checkpoints, a second writer, killed writes and full disks."""
import errno
import json
import logging
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae import checkpoint
from pyro_ccvae.checkpoint import (
    CheckpointError,
    DirectoryLock,
    ForeignDirectoryError,
    load_checkpoint,
    previous_path,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.run_directory import CHECKPOINT, LOCK, METRICS, RunError, load_run, lock_run
from pyro_ccvae.training import Trainer, TrainingError, train
from pyro_ccvae_cli.main import main


def tiny(**overrides):
    options = dict(num_train=64, epochs=2, batch_size=32, k_samples=4, z_style_dim=3, device="cpu")
    options.update(overrides)
    return TrainConfig.from_options(**options)


def one_line(text: str) -> str:
    assert "\n" not in text.strip(), text
    return text


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for part in ("model", "guide") for v in state[part].values() if v.is_floating_point())


# --- 1. a NaN stop keeps only good checkpoints and says what exists -----------------------


def test_non_finite_parameters_are_never_saved(tmp_path, monkeypatch):
    """A guide whose gradients turn a parameter NaN on an epoch's last step, with a finite loss."""
    trainer = Trainer(tiny(epochs=3), tmp_path, progress=False)
    step, calls = trainer.svi.step, []

    def step_then_poison(*args):
        calls.append(1)
        loss = step(*args)
        if len(calls) == 4:  # the last step of epoch 2
            with torch.no_grad():
                next(trainer.guide.parameters()).fill_(float("nan"))
        return loss

    monkeypatch.setattr(trainer.svi, "step", step_then_poison)
    with pytest.raises(TrainingError, match="NaN or infinite") as info:
        trainer.fit()
    message = one_line(str(info.value))
    assert "after 1 epoch(s)" in message and "is kept" in message
    state, used = load_checkpoint(tmp_path / CHECKPOINT)
    assert used == tmp_path / CHECKPOINT and state["position"]["epoch"] == 1 and all_finite(state)
    load_run(tmp_path, load_data=False)  # what evaluate loads


def test_nan_before_the_first_checkpoint_claims_none(tmp_path, monkeypatch):
    trainer = Trainer(tiny(), tmp_path, progress=False)
    monkeypatch.setattr(trainer.svi, "step", lambda *args: float("nan"))
    with pytest.raises(TrainingError, match="no checkpoint was written") as info:
        trainer.fit()
    assert "is kept" not in str(info.value)
    assert not (tmp_path / CHECKPOINT).exists() and not previous_path(tmp_path / CHECKPOINT).exists()
    train(tiny(epochs=1), tmp_path, progress=False)  # the same --out can start again


def test_a_huge_learning_rate_ends_in_one_line_and_a_loadable_run(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--out", out, "--num-train", "64", "--batch-size", "64", "--epochs", "3", "--lr", "1e6"]
    args += ["--k-samples", "4", "--z-style-dim", "3", "--no-progress"]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    if result.exit_code == 0:  # the run survived: nothing to check but that it is usable
        load_run(out, load_data=False)
        return
    assert result.exit_code == 1 and len(lines) == 1, result.output
    if "no checkpoint was written" in lines[0]:
        assert not (out / CHECKPOINT).exists()
    else:
        assert "is kept" in lines[0]
        state, _ = load_checkpoint(out / CHECKPOINT)
        assert all_finite(state)
        load_run(out, load_data=False)


# --- 2. checksums and the previous checkpoint ----------------------------------------------


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped":  # in the middle: a tensor's bytes, which torch.load reads silently
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    elif how == "deleted":
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "empty", "flipped", "deleted"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, how, caplog):
    path = tmp_path / "checkpoint.pt"
    for step in (1, 2):
        save_checkpoint({"step": step, "weights": torch.full((1000,), float(step))}, path)
    assert torch.load(previous_path(path), weights_only=True)["step"] == 1
    damage(path, how)
    with caplog.at_level(logging.WARNING):
        state, used = load_checkpoint(path)
    assert used == previous_path(path) and state["step"] == 1
    if how != "deleted":
        assert "checkpoint.pt" in caplog.text and "checkpoint.prev.pt" in caplog.text
    damage(previous_path(path), "flipped")
    with pytest.raises(CheckpointError, match="no usable checkpoint") as info:
        load_checkpoint(path)
    one_line(str(info.value))


def test_resume_and_analysis_use_the_previous_checkpoint(tmp_path):
    train(tiny(), tmp_path, progress=False)
    damage(tmp_path / CHECKPOINT, "flipped")
    assert load_run(tmp_path, load_data=False).config.optimisation.epochs == 2
    train(tiny(epochs=3), tmp_path, resume=True, progress=False)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / METRICS).read_text().splitlines()]
    assert epochs == [1, 2, 3]  # resumed after epoch 1: epoch 2 again, then 3
    assert load_checkpoint(tmp_path / CHECKPOINT)[0]["position"]["epoch"] == 3


# --- 3. nothing in a run directory runs code -----------------------------------------------


def test_rng_states_load_weights_only_and_restore_exactly(tmp_path):
    np.random.normal()  # a cached Gaussian in numpy's state
    saved = rng_state()
    torch.save(saved, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.normal(size=3), np.random.normal(), random.random(), random.gauss(0, 1))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.normal(size=3), np.random.normal(), random.random(), random.gauss(0, 1))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2:] == again[2:]


def test_training_checkpoint_loads_weights_only(tmp_path):
    train(tiny(epochs=1), tmp_path, progress=False)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["optimizer"] and state["position"]["epoch"] == 1


# --- 4. one writer per run directory -------------------------------------------------------


def test_a_second_writer_fails_at_once(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    lock = lock_run(tmp_path)
    try:
        with pytest.raises(RunError, match="in use by another training process"):
            Trainer(tiny(), tmp_path, progress=False)
    finally:
        lock.release()
    Trainer(tiny(epochs=1), tmp_path, progress=False).fit()  # free again


def test_a_killed_writer_does_not_leave_the_lock_stuck(tmp_path):
    code = f"from pyro_ccvae.checkpoint import DirectoryLock; import os, signal; DirectoryLock({str(tmp_path)!r}, {LOCK!r}).acquire(); print('held', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    holder = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "held" in holder.stdout and holder.returncode == -9
    lock = DirectoryLock(tmp_path, LOCK)
    assert lock.acquire()
    lock.release()


# --- 5. --out never overwrites a user's files ----------------------------------------------


def test_out_refuses_a_directory_of_someone_else(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ForeignDirectoryError, match="refusing to write"):
        Trainer(tiny(), tmp_path, progress=False)
    (tmp_path / "config.json").write_text('{"name": "not ours"}')
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 1 and one_line(result.output).startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "thesis.tex"]


# --- 6. a damaged metrics.jsonl does not block --resume ------------------------------------


@pytest.mark.parametrize("tail", [b'{"epoch": 2, "lo', b"\n\n", b"\0" * 40])
def test_resume_skips_damaged_metric_lines(tmp_path, tail, caplog):
    train(tiny(epochs=1), tmp_path, progress=False)
    with open(tmp_path / METRICS, "ab") as f:
        f.write(tail)
    with caplog.at_level(logging.WARNING):
        train(tiny(epochs=2), tmp_path, resume=True, progress=False)
    assert str(tmp_path / METRICS) in caplog.text
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / METRICS).read_text().splitlines()]
    assert epochs == [1, 2]


# --- 7. a full disk while writing a checkpoint ---------------------------------------------


def test_checkpoint_on_a_full_disk_is_one_line_and_keeps_the_last(tmp_path, monkeypatch):
    train(tiny(epochs=1), tmp_path, progress=False)
    trainer = Trainer(tiny(epochs=2), tmp_path, resume=True, progress=False)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(TrainingError, match="no space left on device writing") as info:
        trainer.fit()
    assert "after 1 epoch(s)" in one_line(str(info.value))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / CHECKPOINT)[0]["position"]["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_pickled_checkpoint_loads_only_when_trusted(tmp_path):
    """Version 0.1 pickled numpy RNG states: refused by the weights-only load with a pointer to
    --trust-run, loaded in full when the run is trusted."""
    path = tmp_path / CHECKPOINT
    numpy_state = np.random.get_state()
    torch.save({"rng": {"numpy": numpy_state}, "position": {"epoch": 3}}, path)
    with pytest.raises(CheckpointError, match="weights-only load refuses .*pass --trust-run"):
        load_checkpoint(path)
    state, used = load_checkpoint(path, trusted=True)
    assert used == path and state["position"] == {"epoch": 3}
    assert np.array_equal(state["rng"]["numpy"][1], numpy_state[1])


def test_a_set_up_that_fails_leaves_no_folder_it_made(tmp_path):
    """Training refused during set-up (here: no MNIST files where --data-dir points) removes the
    run folder it created, which held only its lock; a folder that was there before stays."""
    out = tmp_path / "new-run"
    config = TrainConfig.from_options(dataset="mnist", data_dir=str(tmp_path / "no-mnist-here"), epochs=1)
    with pytest.raises(ValueError, match="MNIST"):
        Trainer(config, out, progress=False)
    assert not out.exists()
    out.mkdir()
    with pytest.raises(ValueError, match="MNIST"):
        Trainer(config, out, progress=False)
    assert out.is_dir()
