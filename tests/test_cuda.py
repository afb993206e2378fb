"""CUDA smoke tests, skipped without a GPU: training with bf16, keyed noise and device-resident data
on one GPU, no host synchronisation inside a step, exact resumption; NCCL with two GPUs."""
import json
import subprocess
import sys

import pytest
import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.distributed import World
from pyro_ccvae.run_directory import CHECKPOINT, METRICS
from pyro_ccvae.training import Trainer, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny(**overrides):
    options = dict(num_train=96, epochs=2, batch_size=32, k_samples=8, z_style_dim=3, device="cuda")
    return TrainConfig.from_options(**{**options, **overrides})


def test_a_step_on_cuda_never_waits_for_the_device(tmp_path):
    trainer = Trainer(tiny(precision="bf16", noise="keyed"), tmp_path, progress=False, world=World())
    assert trainer.batches.images.is_cuda and trainer.batches.labels.is_cuda  # device-resident data
    real_step, steps = trainer.svi.step, []

    def step_that_must_not_sync(*args):
        torch.cuda.set_sync_debug_mode("error")  # any synchronising call inside the step raises
        try:
            return real_step(*args)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            steps.append(1)

    trainer.svi.step = step_that_must_not_sync
    summary = trainer.fit()
    assert len(steps) == 6 and summary["epochs"] == 2
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert all(line["bf16_elbo_gap"] <= 1e-3 for line in lines)


def test_a_resumed_cuda_run_ends_like_an_uninterrupted_one(tmp_path):
    train(tiny(noise="keyed"), tmp_path / "whole", progress=False, world=World())
    train(tiny(noise="keyed", epochs=1), tmp_path / "split", progress=False, world=World())
    train(tiny(noise="keyed"), tmp_path / "split", resume=True, progress=False, world=World())
    whole, split = (torch.load(tmp_path / n / CHECKPOINT, weights_only=True)["guide"] for n in ("whole", "split"))
    for name in whole:  # cuDNN may pick other kernels between processes: close, not bitwise
        assert torch.allclose(whole[name], split[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_torchrun_with_nccl_on_two_gpus(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pyro_ccvae_cli", "train"]
    args = ["--out", str(tmp_path), "--num-train", "64", "--epochs", "1", "--batch-size", "32", "--k-samples", "4", "--no-progress"]
    result = subprocess.run([*command, *args, "--device", "cuda", "--noise", "keyed"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["world_size"] == 2
