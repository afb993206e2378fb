"""Data-parallel training on the CPU with 2 gloo processes: they compute one process's gradient and
train alike (keyed noise), resume exactly after a SIGTERM that only one of them got, and refuse a
resume with another number of processes in one line."""
import json
import os
import signal
import socket

import pyro
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.distributed import DataParallelSVI, DistributedError, World, rank_seed
from pyro_ccvae.noise import batch_noise
from pyro_ccvae.run_directory import CHECKPOINT, METRICS, load_state, save_state
from pyro_ccvae.training import Trainer, TrainingError, TrainingInterrupted, train

WORLD = 2
# 49 points in batches of 16: the last batch has one point, so process 1's shard of it is empty.
TINY = dict(num_train=49, epochs=2, batch_size=16, k_samples=4, z_style_dim=3, sup_frac=0.5, device="cpu")


def tiny(**overrides):
    return TrainConfig.from_options(**{**TINY, **overrides})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(rank, port, task, args, out):
    """One of the spawned processes: torchrun's environment, a gloo group, then ``task(*args)``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        result = task(*args)
    except Exception as error:  # noqa: BLE001  (reported to the test)
        result = {"error": type(error).__name__, "message": str(error)}
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()
    # No interpreter teardown: once in a full suite under load, a gloo thread's destructor aborted
    # a finished process there ("terminate called without an active exception").
    os._exit(0)


def on_two_processes(tmp_path, task, *args) -> list:
    out = tmp_path / "results"
    out.mkdir()
    mp.spawn(_process, args=(free_port(), task, args, str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


def assert_close(actual, expected, relative, name):
    """Equal up to float32 summation order: the largest difference against the tensor's scale (an
    entry near zero that cancels within the sum is off by the same absolute amount as the rest)."""
    scale = expected.abs().max().item()
    error = (actual - expected).abs().max().item()
    assert error <= relative * scale + 1e-7, f"{name}: off by {error:.3g} at scale {scale:.3g}"


def weights(run_dir):
    state = torch.load(run_dir / CHECKPOINT, weights_only=True)
    return {f"{part}.{k}": v for part in ("model", "guide") for k, v in state[part].items()}


def batch_gradients(trainer, epoch=0, number=0):
    """The loss of batch ``number`` of epoch ``epoch`` and the gradient of every parameter (by its
    param store name), summed over the processes as a step takes them; nothing is updated."""
    batches = trainer.batches
    batch = batches.epoch_order(epoch).split(trainer.config.optimisation.batch_size)[number]
    shard, shard_on_device, offset = batches.shard(batch, batch.to(trainer.device))
    with trainer.scope(), pyro.validation_enabled(False), batch_noise(trainer.loop.noise, epoch, number, offset, len(shard), len(batch)):
        svi = trainer.svi
        loss, parameters = svi.gradients(*batches.batch(shard, shard_on_device)) if len(shard) else svi.gradients()
        store = pyro.get_param_store()
        gradients = {store.param_name(p): p.grad.detach().clone() for p in parameters if p.grad is not None}
        for p in parameters:
            p.grad = None
    return float(loss), gradients


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / METRICS).read_text().splitlines()]


# --- the tasks each process runs (module level, so that spawn can find them) -------------------


def gradient_then_training(run_dir):
    trainer = Trainer(tiny(noise="keyed"), run_dir, progress=False)
    world = trainer.world
    loss, gradients = batch_gradients(trainer, epoch=0, number=0)
    last = batch_gradients(trainer, epoch=0, number=3)  # the one-point batch: process 1 has no data
    trainer.fit()
    return {"world": (world.rank, world.size), "loss": loss, "gradients": gradients, "last": last}


def stopped_by_sigterm_then_resumed(base):
    train(tiny(), base / "whole", progress=False)
    trainer = Trainer(tiny(), base / "cut", progress=False)
    real_step, calls = trainer.svi.step, []

    def step_then_sigterm(*args):
        calls.append(1)
        if trainer.world.rank == 1 and len(calls) == 5:  # in epoch 2, only process 1 is signalled
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args)

    trainer.svi.step = step_then_sigterm
    try:
        trainer.fit()
    except TrainingInterrupted as stop:
        stopped = {"message": str(stop), "signal": stop.signal_number}
    position = torch.load(base / "cut" / CHECKPOINT, weights_only=True)["position"] if trainer.world.is_main else None
    train(tiny(), base / "cut", resume=True, progress=False)
    return {"stopped": stopped, "position": position}


def resume(run_dir):
    Trainer(tiny(epochs=2), run_dir, resume=True, progress=False)


# --- the tests ---------------------------------------------------------------------------


def test_two_processes_compute_one_process_s_gradient_and_training(tmp_path):
    results = on_two_processes(tmp_path, gradient_then_training, tmp_path / "two")
    assert [r.get("world") for r in results] == [(0, 2), (1, 2)], results
    one = Trainer(tiny(noise="keyed"), tmp_path / "one", progress=False, world=World())
    loss, gradients = batch_gradients(one, epoch=0, number=0)
    last_loss, last_gradients = batch_gradients(one, epoch=0, number=3)
    one.fit()

    for result in results:  # every process holds the summed gradient of the whole batch
        assert result["loss"] == pytest.approx(loss, rel=1e-6)
        assert result["gradients"].keys() == gradients.keys() and len(gradients) > 10
        for name, gradient in gradients.items():
            assert_close(result["gradients"][name], gradient, 1e-4, name)
        assert result["last"][0] == pytest.approx(last_loss, rel=1e-6)
        for name, gradient in last_gradients.items():
            assert_close(result["last"][1][name], gradient, 1e-4, name)
    # After 8 Adam steps (two epochs, a one-point batch in each) the parameters and losses agree.
    two_weights, one_weights = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert two_weights.keys() == one_weights.keys()
    for name in one_weights:
        # Adam divides by the root of the squared gradient: an entry whose gradient is near zero
        # turns summation-order differences into steps of up to lr, hence the looser bound.
        assert_close(two_weights[name], one_weights[name], 1e-3, name)
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    assert torch.load(tmp_path / "two" / CHECKPOINT, weights_only=True)["world_size"] == 2


def test_a_sigterm_stops_both_processes_and_the_resumed_run_is_exact(tmp_path):
    results = on_two_processes(tmp_path, stopped_by_sigterm_then_resumed, tmp_path)
    assert all("error" not in r for r in results), results
    got, other = results[1]["stopped"], results[0]["stopped"]
    assert got["signal"] == signal.SIGTERM and "interrupted (SIGTERM) at epoch 2, batch 2" in got["message"]
    assert "another process's signal" in other["message"] and "--resume" in other["message"]
    assert (results[0]["position"]["epoch"], results[0]["position"]["batch"]) == (1, 2)
    whole, cut = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    for name in whole:
        assert torch.equal(whole[name], cut[name]), name
    assert losses(tmp_path / "whole") == losses(tmp_path / "cut")
    state = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert len(state["rng_ranks"]) == 2 and not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])


def test_resuming_with_another_number_of_processes_is_one_line(tmp_path):
    train(tiny(epochs=1), tmp_path / "run", progress=False, world=World())
    results = on_two_processes(tmp_path, resume, tmp_path / "run")
    assert results[0]["error"] == "TrainingError" and results[1]["error"] == "PeerFailed"
    for result in results:
        assert "\n" not in result["message"]
        assert "trained by 1 process(es) and this launch has 2" in result["message"] and "ccvae-pyro train" in result["message"]
    # And back: a checkpoint of 2 processes refuses one.
    state, _ = load_state(tmp_path / "run")
    save_state(tmp_path / "run", {**state, "world_size": 2}, hint="")
    with pytest.raises(TrainingError, match=r"trained by 2 process\(es\) and this launch has 1; resume it with torchrun with 2"):
        Trainer(tiny(epochs=2), tmp_path / "run", resume=True, progress=False, world=World())


def test_world_from_torchrun_s_environment():
    assert World.from_environment({}) == World()
    world = World.from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (world.rank, world.size, world.local_rank, world.is_main, world.distributed) == (2, 4, 0, False, True)
    with pytest.raises(DistributedError, match="RANK is missing"):
        World.from_environment({"WORLD_SIZE": "2"})
    assert rank_seed(0, 0) != rank_seed(0, 1) and rank_seed(0, 1) == rank_seed(0, 1)


def test_a_single_process_steps_like_pyro_s_svi(tmp_path):
    """DataParallelSVI in one process is SVI without reading the loss: same parameters after steps."""
    results = []
    for cls in (pyro.infer.SVI, DataParallelSVI):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        trainer = Trainer(tiny(), tmp_path / cls.__name__, progress=False, world=World())
        with trainer.scope():
            svi = cls(trainer.model, trainer.guide, trainer.optim, trainer.elbo)
            batch = trainer.batches.batch(torch.arange(16))
            pyro.set_rng_seed(4)
            values = [float(svi.step(*batch)) for _ in range(3)]
        trainer.close()
        results.append((values, {k: v.clone() for k, v in trainer.guide.state_dict().items()}))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(results[0][1][k], results[1][1][k]) for k in results[0][1])
