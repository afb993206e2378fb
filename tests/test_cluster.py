"""Cluster habits through the command line: a scheduler's SIGTERM or SIGUSR1 saves and exits with
128 + the signal, and the run resumes; `torchrun -m pyro_ccvae_cli train` trains with 2 gloo
processes, rank 0 alone writing and reporting."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from pyro_ccvae.run_directory import CHECKPOINT, METRICS

TINY = ["--num-train", "32", "--batch-size", "16", "--k-samples", "4", "--z-style-dim", "3", "--no-progress", "--device", "cpu"]


def ccvae(*args):
    return [sys.executable, "-m", "pyro_ccvae_cli", *map(str, args)]


# SIGTERM: tests/test_distributed.py stops two processes with it; the exit status is 128 + the signal for both.
@pytest.mark.parametrize("signum", [signal.SIGUSR1])
def test_a_scheduler_s_signal_saves_and_exits(tmp_path, signum):
    out = tmp_path / "run"
    process = subprocess.Popen(ccvae("train", "--out", out, "--epochs", 1000, *TINY), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    message = [line for line in stderr.splitlines() if line.startswith("interrupted")]
    assert len(message) == 1 and signal.Signals(signum).name in message[0] and "--resume" in message[0]
    state = torch.load(out / CHECKPOINT, weights_only=True)
    stopped_at = state["position"]["epoch"]
    assert 1 <= stopped_at < 1000 and state["world_size"] == 1
    resumed = subprocess.run(ccvae("train", "--out", out, "--resume", "--epochs", stopped_at + 1, *TINY), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(out / CHECKPOINT, weights_only=True)["position"]["epoch"] == stopped_at + 1


def test_torchrun_trains_with_two_processes(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pyro_ccvae_cli"]
    result = subprocess.run([*command, "train", "--out", str(out), "--epochs", "1", *TINY], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('"test_accuracy"') == 1 and result.stdout.count("run saved in") == 1  # rank 0 reports
    assert torch.load(out / CHECKPOINT, weights_only=True)["world_size"] == 2
    assert len((out / METRICS).read_text().splitlines()) == 1
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1
