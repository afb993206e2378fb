"""The training loop: epochs of optimiser steps on sharded batches, the losses read (and checked
for NaN, and stop requests acted on) at read points, a checkpoint and a report after each epoch.

A step never waits on the device: the step returns the loss as a device tensor, and the loop
reads the losses once every :data:`CUDA_READ_EVERY` steps on CUDA, every step on the CPU (where
reading costs nothing).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from .. import sizes
from ..acceleration import check_precision_gap, precision_gap, uses_bf16
from ..config import TrainConfig
from ..distributed import DataParallelSVI, World
from ..noise import batch_noise
from ..supervision import stage_of_epoch
from .batches import TrainingSet
from .checkpointing import Checkpoints, Position
from .errors import TrainingError, shared
from .report import EpochReport
from .signals import StopRequests

#: on CUDA, read the losses back (a wait for the device) once every this many steps.
CUDA_READ_EVERY = 25
#: training points in the fixed batch on which bf16 is compared with fp32.
PRECISION_CHECK_POINTS = 64


class Loop:
    """Trains ``svi``'s model and guide on ``batches`` up to ``config.optimisation.epochs``, from ``position``."""

    def __init__(self, config: TrainConfig, world: World, family, svi: DataParallelSVI, networks: list, noise,
                 batches: TrainingSet, checkpoints: Checkpoints, stops: StopRequests, report: EpochReport,
                 run_dir: Path, progress: bool):  # fmt: skip
        self.config, self.world, self.family, self.svi, self.networks, self.noise = config, world, family, svi, networks, noise
        self.batches, self.checkpoints, self.stops, self.report = batches, checkpoints, stops, report
        self.run_dir, self.progress, self.device = run_dir, progress, batches.device
        #: steps between reads of the losses (each read waits for the device).
        self.read_every = 1 if self.device.type == "cpu" else CUDA_READ_EVERY
        self.position = Position()

    def global_step(self) -> int:
        """Optimiser steps taken so far (TensorBoard's step axis)."""
        return self.position.epoch * self.batches.batches_per_epoch() + self.position.batch

    def precision_gap(self) -> float:
        """bf16 against fp32 on a fixed batch of training points (:func:`~pyro_ccvae.acceleration.precision_gap`)."""
        with pyro.validation_enabled(False):
            return precision_gap(
                self.svi.objective, self.svi.model, self.svi.guide, self.batches.first(PRECISION_CHECK_POINTS), self.networks,
                seed=self.config.run.seed,
            )  # fmt: skip

    def run(self) -> None:
        while self.position.epoch < self.config.optimisation.epochs:
            self._train_epoch()

    def _step(self, epoch: int, number: int, batch: torch.Tensor, batch_on_device: torch.Tensor):
        """One optimiser step on batch ``number`` (this process's shard of it); the batch's loss, unread."""
        shard, shard_on_device, offset = self.batches.shard(batch, batch_on_device)
        self.svi.stop_requested = self.stops.signal is not None
        self.family.before_step(self.svi.model, self.svi.guide, self.config.model, self.global_step() + 1, self.batches.batches_per_epoch())
        with batch_noise(self.noise, epoch, number, offset, len(shard), len(batch)):
            if len(shard) == 0:
                return self.svi.step_without_data()
            return self.svi.step(*self.batches.batch(shard, shard_on_device))

    def _read(self, pending: list, bar, rate_since: tuple[float, int]) -> bool:
        """Read the losses of the ``pending`` steps (``(images, loss)``), check them, count them
        and show them; returns whether to stop (a stop request, the same on every process)."""
        pos = self.position
        values = torch.stack([torch.as_tensor(loss, device=self.device) for _, loss in pending]).tolist()
        first = pos.batch - len(pending)  # the batch number of pending[0]
        for offset, ((images, _), value) in enumerate(zip(pending, values)):
            if not math.isfinite(value):
                bar.close()
                raise shared(self.world, TrainingError(
                    f"the loss became {value} at epoch {pos.epoch + 1}, batch {first + offset + 1}; "
                    f"{self.checkpoints.kept()}; try a new run with a lower --lr"
                ))  # fmt: skip
            pos.loss_sum += value
            pos.images += images
        steps_before = pos.epoch * self.batches.batches_per_epoch() + first
        self.report.step_losses(steps_before, [v / images for (images, _), v in zip(pending, values)])
        started, images_then = rate_since
        rate = (pos.images - images_then) / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(loss=f"{pos.loss_sum / max(pos.images, 1):.1f}", img_s=f"{rate:.0f}")
        bar.update(len(pending))
        if self.world.distributed:
            return self.svi.take_stop_requests() > 0
        return self.stops.signal is not None

    def _train_epoch(self) -> None:
        config, pos = self.config.optimisation, self.position
        self.batches.use_stage(stage_of_epoch(self.batches.stages, pos.epoch))
        order = self.batches.epoch_order(pos.epoch)
        batches = order.split(config.batch_size)
        batches_on_device = order.to(self.device).split(config.batch_size)  # one copy per epoch
        start = time.perf_counter()
        images_at_start = pos.images
        bar = tqdm(
            total=len(batches),
            initial=pos.batch,
            desc=f"epoch {pos.epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        pending: list = []  # (images, loss) of the steps whose losses are not read yet
        for number in range(pos.batch, len(batches)):
            with self._out_of_memory_says(number):
                loss = self._step(pos.epoch, number, batches[number], batches_on_device[number])
            pending.append((len(batches[number]), loss))
            pos.batch += 1
            stop_now = not self.world.distributed and self.stops.signal is not None
            if len(pending) >= self.read_every or number == len(batches) - 1 or stop_now:
                stop = self._read(pending, bar, (start, images_at_start))
                pending = []
                if stop:
                    bar.close()
                    self._interrupted_here()
        bar.close()
        self.checkpoints.check_finite(pos.epoch)
        seconds = time.perf_counter() - start
        record = self.world.on_main(
            lambda: self.report.end_epoch(pos, seconds, images_at_start, self._more_of_the_record, self.checkpoints.kept())
        )
        self.position = Position(epoch=pos.epoch + 1)
        self.checkpoints.save(self.position)
        if self.world.is_main:
            self.report.log_epoch(record, len(self.batches.stages))
        if record.get("bf16_elbo_gap") is not None:
            try:
                check_precision_gap(record["bf16_elbo_gap"], f"after epoch {record['epoch']} (saved)")
            except ValueError as error:
                raise shared(self.world, error) from None

    def _more_of_the_record(self) -> dict:
        """An epoch's numbers besides its loss, speed and validation: the supervision stage, bf16's
        gap, and what the objective counted."""
        more = {}
        if self.config.optimisation.sup_schedule is not None:
            stage = self.batches.stage
            more.update(sup_stage=stage + 1, labelled=len(self.batches.stage_labelled[stage]))
        if uses_bf16(self.networks):
            more["bf16_elbo_gap"] = self.precision_gap()
        # An objective may count what its estimator did (the CCVAE: importance weights capped
        # in this epoch's batches; under torchrun, those of rank 0's shards).
        take_counts = getattr(self.svi.objective, "take_counts", None)
        if callable(take_counts):
            more.update(take_counts())
        return more

    @contextmanager
    def _out_of_memory_says(self, number: int):
        """An allocation that fails in the step of batch ``number`` is one line naming the options
        to lower (the sizes were checked before the first step, but only roughly)."""
        k = getattr(self.config.model, "k_samples", 0)
        lower = "--batch-size" + (" or --k-samples" if k else "")
        try:
            with sizes.out_of_memory_says(f"the training step of epoch {self.position.epoch + 1}, batch {number + 1}", lower, self.device):
                yield
        except sizes.SizeError as error:
            # this process's own failure (the others' memory may have sufficed): it reports it itself
            raise TrainingError(f"{error}; {self.checkpoints.kept()}") from None

    def _interrupted_here(self) -> None:
        """Save the position of a stop request and raise :class:`~.errors.TrainingInterrupted`."""
        pos = self.position
        self.checkpoints.check_finite(pos.epoch)
        self.checkpoints.save(pos)
        raise self.stops.interrupted(pos.epoch, pos.batch, self.run_dir)
