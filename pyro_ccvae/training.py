"""Training any model family (:mod:`pyro_ccvae.models`) with :class:`pyro.infer.SVI` and the
family's objective, into a run directory; on one process or several (torchrun).

What a run directory holds, and all reading and writing of it, is :mod:`pyro_ccvae.run`'s. How
several processes share a run (sharded batches, summed gradients, rank 0 writing) is
:mod:`pyro_ccvae.distributed`'s; keyed noise is :mod:`pyro_ccvae.noise`'s, bf16 and
``torch.compile`` :mod:`pyro_ccvae.acceleration`'s, TensorBoard :mod:`pyro_ccvae.tracking`'s.

A step never waits on the device: the step returns the loss as a device tensor, and the loop
reads the losses (and checks them for NaN, and acts on stop requests) once every
:data:`CUDA_READ_EVERY` steps on CUDA, every step on the CPU (where reading costs nothing).
"""
from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional

import pyro
import torch
from tqdm.auto import tqdm

from . import run as rundir, sizes
from .acceleration import accelerate, check_precision_gap, precision_gap, uses_bf16
from .checkpoint import CheckpointError, DiskFullError, rng_state, set_rng_state
from .config import TrainConfig
from .data import DataSplits, as_float_images, load_dataset
from .distributed import CollectiveWatchdog, DataParallelSVI, PeerFailed, World, rank_seed
from .health import check_health, mean_image
from .models import get_family
from .models.base import RECONSTRUCT
from .noise import batch_noise, noise_for
from .prediction import label_accuracy, mean_of as _mean
from .run import CONFIG, CHECKPOINT, RunError
from .supervision import Stage, check_epochs, labelled_order, nested_subsets, stage_counts, stage_of_epoch, stage_spans

log = logging.getLogger(__name__)

#: on CUDA, move a whole split to the device when its images take less than this.
DEVICE_RESIDENT_BYTES = 4 << 30
#: on CUDA, read the losses back (a wait for the device) once every this many steps.
CUDA_READ_EVERY = 25
#: signals that stop training at the next read point, after saving the position.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
#: under torchrun a Ctrl-C arrives twice (from the terminal and forwarded by torchrun): a second
#: one within this many seconds is the same key press, not the "stop at once" of a second press.
SAME_SIGNAL_SECONDS = 1.0
#: training points in the fixed batch on which bf16 is compared with fp32.
PRECISION_CHECK_POINTS = 64
#: validation images in each epoch's TensorBoard reconstruction grid.
GRID_IMAGES = 8


class TrainingError(RuntimeError):
    """Training cannot go on; the message is one line (the last good checkpoint is kept)."""


class TrainingInterrupted(RuntimeError):
    """A stop request (Ctrl-C, SIGTERM or SIGUSR1): the position was saved and the run can be resumed.

    :param signal_number: the signal that asked for it (the exit status is 128 plus it).
    """

    def __init__(self, message: str, signal_number: int = signal.SIGINT):
        super().__init__(message)
        self.signal_number = int(signal_number)


@torch.no_grad()
def predict_probs(representation, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Per-label class probabilities of every image (the representation's ``predict``): ``[N, L, K]`` on the CPU."""
    out = [
        representation.predict(as_float_images(images[i : i + batch_size], device)).cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(out)


def choose_labelled(num_train: int, sup_frac: float, seed: int) -> torch.Tensor:
    """The fixed-seed labelled subset for a supervision rate (sorted indices)."""
    return labelled_order(num_train, _labelled_count(num_train, sup_frac, "--sup-frac"), seed).sort().values


def _labelled_count(num_train: int, sup_frac: float, flag: str) -> int:
    """:func:`~pyro_ccvae.run.labelled_count`, warning when a rate above 0 labels no point."""
    count = rundir.labelled_count(num_train, sup_frac)
    if count == 0 and sup_frac > 0:
        log.warning(
            "%s %g of %d training points rounds to 0 labelled points: the run trains without labels; "
            "give more than %.3g for one", flag, sup_frac, num_train, 0.5 / num_train,
        )  # fmt: skip
    return count


def _tensors(value):
    """Every tensor in nested dicts, lists and tuples (an optimiser's state)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


@dataclass
class _Position:
    """Where training stands: ``epoch`` epochs complete, ``batch`` batches into the next one."""

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    images: int = 0


class Trainer:
    """Trains a model of the family ``config.model.name`` into ``run_dir``; ``Trainer(config, run_dir).fit()``.

    :param resume: continue the run in ``run_dir`` (its config wins; ``config.optimisation.epochs`` sets the
        new last epoch).
    :param explicit: the config fields the user set, each with the option that set it (e.g.
        ``{"lr": "--lr"}``); on resume, one that differs from the run's config is an error
        rather than silently ignored.
    :param world: the processes training together (default: what torchrun's environment says;
        one process without it). With several, every process constructs a ``Trainer`` with the
        same arguments; rank 0 alone touches ``run_dir``.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        resume: bool = False,
        progress: bool = True,
        explicit: Mapping[str, str] = MappingProxyType({}),
        world: Optional[World] = None,
    ):
        self.world = World.from_environment() if world is None else world
        self.run_dir = Path(run_dir)
        self.progress = progress and self.world.is_main
        self._lock = None
        self._made_run_dir = False
        self._tracker = None
        self._owns_group = False
        self._stop_signal: Optional[int] = None
        #: the supervision stage (0-based) whose labelled subset the steps use (:meth:`_use_stage`).
        self.stage: Optional[int] = None
        # The modules' Pyro parameters live in a store of the trainer's own, so that training
        # neither reads nor wipes the caller's (see :meth:`scope`).
        self._params: dict = {"params": {}, "constraints": {}}
        try:
            self.device = self.world.device(config.run.device)
            self._owns_group = self.world.join(self.device)
            self.world.on_main(lambda: self._claim_run_directory(resume, config.execution.tensorboard))
            with self.scope():
                self._set_up(config, resume, explicit)
        except BaseException:
            self.close()
            self._remove_empty_run_directory()
            raise

    def _remove_empty_run_directory(self) -> None:
        """A set-up that failed leaves no folder behind that it made and that holds only its lock."""
        if self._made_run_dir and {p.name for p in self.run_dir.iterdir()} <= {rundir.LOCK}:
            (self.run_dir / rundir.LOCK).unlink(missing_ok=True)
            self.run_dir.rmdir()

    @contextmanager
    def scope(self):
        """Run with the trainer's own Pyro parameter store (the caller's is restored on exit)."""
        with pyro.get_param_store().scope(state=self._params):
            yield

    def close(self) -> None:
        """Let another process write the run, and leave the process group (``fit`` does this when it ends)."""
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._owns_group:
            self._owns_group = False
            World.leave()

    # --- set-up -------------------------------------------------------------------------

    def _claim_run_directory(self, resume: bool, tensorboard: bool = False) -> None:
        """Rank 0: check ``run_dir`` and take the writer's lock (after checking that what was asked
        for can run: a missing TensorBoard package then leaves no new run folder behind)."""
        if tensorboard:
            from .tracking import require_tensorboard  # imports torch.utils.tensorboard: only when asked for

            require_tensorboard()
        if resume and not rundir.has_run(self.run_dir):
            raise TrainingError(f"cannot resume: {self.run_dir} holds no {CONFIG} and {CHECKPOINT} from a previous run")
        rundir.check_run_directory(self.run_dir)
        self._made_run_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = rundir.lock_run(self.run_dir)

    def _resolved_config(self, config: TrainConfig, resume: bool, explicit: Mapping[str, str]) -> TrainConfig:
        """Rank 0: the config to train with (on resume, the run's)."""
        if resume:
            config = self._resumed_config(config, explicit)
        elif rundir.has_checkpoint(self.run_dir):
            raise TrainingError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out")
        else:  # typed from the guide's constructor ("rank=8" -> 8); a mistyped name stops here
            config.guide.options = get_family(config.model.name).guide_options(config.guide.name, config.guide.options)
            stages = config.optimisation.stages()
            if stages is not None:  # a config built without from_options (which checks it) too
                check_epochs(stages, config.optimisation.epochs)
        config.data.make_paths_absolute()
        return config

    def _set_up(self, config: TrainConfig, resume: bool, explicit: Mapping[str, str]) -> None:
        world = self.world
        self.config = config = world.on_main(lambda: self._resolved_config(config, resume, explicit))
        pyro.set_rng_seed(config.run.seed)

        # Rank 0 first: it builds the data cache that the others then read.
        self.data: DataSplits = world.main_first(lambda: load_dataset(config.data.dataset, config.data.data_options(config.run.seed)))
        if resume:
            world.on_main(lambda: rundir.check_data_matches(self.run_dir, self.data))
        self.family = family = get_family(config.model.name)
        family.fill_defaults(config.model, config.data.dataset)
        config.data.info = {
            "label_names": list(self.data.label_names),
            "num_classes": list(self.data.num_classes),
            "channels": self.data.channels,
            "image_size": self.data.image_size,
            "num_train": len(self.data.train),
        }
        world.together(self._check_step_fits)  # each process its own device's memory; one refusal stops all
        # What labelled.json holds (rank 0 reads or draws it; every process gets the same).
        self.labelled = world.on_main(lambda: self._labelled_subset(resume))
        train = self.data.train
        #: the supervision stages (one, ``--sup-frac``'s, without a schedule) and each one's labelled subset.
        self.stages = config.optimisation.stages() or (Stage(config.optimisation.sup_frac, None),)
        self.stage_labelled = nested_subsets(self.labelled, stage_counts(self.stages, len(train)))
        # Labels and masks are small: on the device, so that a step indexes them there.
        self.labels = train.labels.to(self.device)
        self._use_stage(0)
        if self.device.type == "cuda" and train.images.numel() < DEVICE_RESIDENT_BYTES:
            self.images = train.images.to(self.device)
        else:
            self.images = train.images

        self.model, self.guide = family.build_run(config)
        # The label prior from every point whose label training uses: the first stage's subset holds the others.
        family.prepare(self.model, train.labels[self.stage_labelled[0]], train.mask[self.stage_labelled[0]])
        self.model.to(self.device)
        self.guide.to(self.device)
        self.representation = family.representation(self.model, self.guide, config.data.info, self.device, config.model)
        self._check_guide()
        # Every process built the same parameters from the same seed; rank 0's make sure of it.
        world.broadcast_tensors([*self.model.state_dict().values(), *self.guide.state_dict().values()])
        execution = config.execution
        self.networks = accelerate((self.model, self.guide), self.device, execution.precision, execution.compile)
        self.optim = pyro.optim.Adam(self._optim_args)
        self.elbo = family.objective(config.model)
        self.svi = DataParallelSVI(self.model, self.guide, self.optim, self.elbo, world)
        self.noise = noise_for(execution.noise, config.run.seed)
        #: steps between reads of the losses (each read waits for the device).
        self.read_every = 1 if self.device.type == "cpu" else CUDA_READ_EVERY
        self.position = _Position()
        #: (epoch, batch) of the checkpoint on disk, None while there is none.
        self.saved_at: Optional[tuple[int, int]] = None
        if resume:
            self._load_checkpoint()
            self._use_stage(stage_of_epoch(self.stages, self.position.epoch))
        elif world.distributed:
            pyro.set_rng_seed(rank_seed(config.run.seed, world.rank))  # each process its own stream
        if uses_bf16(self.networks):
            world.on_main(lambda: check_precision_gap(self._precision_gap(), "before the first step"))
        world.on_main(lambda: self._write_run_files(resume))

    def _write_run_files(self, resume: bool) -> None:
        """Rank 0: the config (with the new epochs, device or data location on resume) and, for
        a new run, what is written once; the TensorBoard writer if asked for."""
        if not resume:
            rundir.clear_tensorboard(self.run_dir)
        if self.config.execution.tensorboard:
            from .tracking import TensorBoardLog  # imports torch.utils.tensorboard: only when asked for

            self._tracker = TensorBoardLog(rundir.tensorboard_dir(self.run_dir), purge_step=self._global_step() + 1 if resume else None)
        if not (resume and self.position.epoch >= self.config.optimisation.epochs):  # "nothing to do" changes nothing
            rundir.write_config(self.run_dir, self.config)
        if not resume:
            rundir.write_labelled(self.run_dir, self.labelled)
            rundir.write_splits(self.run_dir, self.data)
            rundir.clear_epoch_metrics(self.run_dir)

    def _resumed_config(self, config: TrainConfig, explicit: Mapping[str, str]) -> TrainConfig:
        try:
            saved = rundir.read_config(self.run_dir)
        except RunError as error:
            raise TrainingError(f"cannot resume: {error}") from None
        saved.optimisation.epochs, saved.run.device = config.optimisation.epochs, config.run.device
        # Typed for the run's own guide, so that "rank=8" compares equal to the saved 8.
        config.guide.options = get_family(saved.model.name).guide_options(saved.guide.name, config.guide.options)
        given, kept = config.fields_by_option(), saved.fields_by_option()
        for name, flag in sorted(explicit.items()):
            (section, f), (saved_section, _) = given[name], kept[name]
            new, old = getattr(section, f.name), getattr(saved_section, f.name)
            if f.metadata.get("resume"):
                setattr(saved_section, f.name, new)
            elif new != old:
                raise TrainingError(
                    f"{flag} cannot change when resuming: the run in {self.run_dir} uses "
                    f"{old!r}; resume without it, or start a new run with another --out"
                )
        return saved

    def _step_size(self) -> tuple[int, dict]:
        """This process's points per step and what sizes the step's memory (see :mod:`.sizes`)."""
        config, info = self.config, self.config.data.info
        batch = min(config.optimisation.batch_size, len(self.data.train))
        shard = -(-batch // self.world.size)
        return shard, {
            "image_size": info["image_size"], "channels": info["channels"], "num_labels": len(info["label_names"]),
            "max_classes": max(info["num_classes"], default=2), "z_char_dim": getattr(config.model, "z_char_dim", 1),
            "k_samples": getattr(config.model, "k_samples", 0),
        }  # fmt: skip

    def _check_step_fits(self) -> None:
        """Refuse, before anything is allocated, a step that cannot fit in the device's memory
        (a huge ``--k-samples`` or ``--batch-size``), naming the option to lower."""
        shard, step = self._step_size()
        images, samples = sizes.training_step_bytes(shard, **step)
        needed = images + samples
        if self.device.type == "cpu":  # the processes of this node share its memory
            needed *= int(os.environ.get("LOCAL_WORLD_SIZE", self.world.size))
        k = step["k_samples"]
        with_k = f" and --k-samples {k}" if k else ""
        lower = "--k-samples" if samples > images else "--batch-size"
        try:
            sizes.require(
                needed, f"a training step with --batch-size {self.config.optimisation.batch_size}{with_k}", lower, self.device
            )
        except sizes.SizeError as error:
            raise TrainingError(str(error)) from None

    def _optim_args(self, param_name: str) -> dict:
        factor = self.family.learning_rate_factor(self.config.model, param_name)
        return {"lr": self.config.optimisation.lr * factor}

    def _labelled_subset(self, resume: bool) -> torch.Tensor:
        """``labelled.json``: ``--sup-frac``'s subset (sorted) or, with a schedule, the first stage's
        points in the seeded permutation's order (stage k labels a prefix of it)."""
        optimisation, num_train = self.config.optimisation, len(self.data.train)
        if resume:
            return rundir.read_labelled(self.run_dir, num_train, optimisation.sup_frac)
        if optimisation.sup_schedule is None:
            return choose_labelled(num_train, optimisation.sup_frac, self.config.run.seed)
        return labelled_order(num_train, _labelled_count(num_train, optimisation.sup_frac, "--sup-schedule's first stage"), self.config.run.seed)

    def _use_stage(self, stage: int) -> None:
        """Mask the labels of the points outside supervision stage ``stage`` (0-based)."""
        if self.stage == stage:
            return
        train = self.data.train
        keep = torch.zeros(len(train), dtype=torch.bool)
        keep[self.stage_labelled[stage]] = True
        self.train_mask = (train.mask & keep.unsqueeze(-1)).to(self.device)
        self.stage = stage

    def _schedule_summary(self) -> list[dict]:
        """Each stage of a supervision schedule: its fraction, epochs (first, last) and labelled points."""
        spans = stage_spans(self.stages, self.config.optimisation.epochs)
        return [
            {"stage": k + 1, "sup_frac": stage.sup_frac, "epochs": list(span), "labelled": len(self.stage_labelled[k])}
            for k, (stage, span) in enumerate(zip(self.stages, spans))
        ]

    def _batch(self, index: torch.Tensor, index_on_device: Optional[torch.Tensor] = None):
        """Images, labels and masks of the training points ``index`` (CPU), on the device;
        ``index_on_device``: the same indices on the device (saves a copy)."""
        on_device = index.to(self.device) if index_on_device is None else index_on_device
        if self.images.device == self.device:
            images = self.images[on_device]
        else:  # a split too large for the device: gather on the host, copy from pinned memory
            images = self.images[index]
            if self.device.type == "cuda":
                images = images.pin_memory()
        return as_float_images(images, self.device), self.labels[on_device], self.train_mask[on_device]

    def _check_guide(self) -> None:
        # Consumes random numbers; a resumed run restores the RNG state afterwards.
        index = torch.arange(min(4, len(self.data.train)))
        self.family.check(self.model, self.guide, *self._batch(index))

    def _precision_gap(self) -> float:
        """bf16 against fp32 on a fixed batch of training points (:func:`~pyro_ccvae.acceleration.precision_gap`)."""
        index = torch.arange(min(PRECISION_CHECK_POINTS, len(self.data.train)))
        with pyro.validation_enabled(False):
            return precision_gap(self.elbo, self.model, self.guide, self._batch(index), self.networks, seed=self.config.run.seed)

    def _batches_per_epoch(self) -> int:
        return -(-len(self.data.train) // self.config.optimisation.batch_size)

    def _global_step(self) -> int:
        """Optimiser steps taken so far (TensorBoard's step axis)."""
        return self.position.epoch * self._batches_per_epoch() + self.position.batch

    # --- checkpoints --------------------------------------------------------------------

    def kept_checkpoint(self) -> str:
        """What the run directory holds to go on from, in words (for error messages)."""
        if self.saved_at is None:
            return f"no checkpoint was written to {self.run_dir} (no epoch ended with good parameters)"
        epoch, batch = self.saved_at
        where = f"{epoch} epoch(s)" + (f" and {batch} batch(es)" if batch else "")
        return f"the checkpoint after {where} in {self.run_dir} is kept"

    def _non_finite_state(self) -> Optional[str]:
        """The name of the first parameter or optimiser state that holds a NaN or an infinity."""
        named = [(f"model.{k}", v) for k, v in self.model.state_dict().items()]
        named += [(f"guide.{k}", v) for k, v in self.guide.state_dict().items()]
        named += [(f"optimizer state of {k}", v) for k, v in self.optim.get_state().items()]
        for name, value in named:
            if any(t.is_floating_point() and not torch.isfinite(t).all() for t in _tensors(value)):
                return name
        return None

    def _check_finite(self) -> None:
        """Stop before saving parameters that are NaN or infinite (a finite loss does not rule them
        out). Every process holds the same parameters, so every process stops alike."""
        bad = self._non_finite_state()
        if bad is not None:
            raise self._shared(TrainingError(
                f"the parameters became NaN or infinite ({bad}) in epoch {self.position.epoch + 1}; "
                f"{self.kept_checkpoint()}; try a new run with a lower --lr"
            ))  # fmt: skip

    def _shared(self, error: Exception) -> Exception:
        """An error every process meets at the same point: rank 0 raises (and reports) it, the
        others a :class:`~pyro_ccvae.distributed.PeerFailed` that the command line keeps quiet."""
        return error if self.world.is_main else PeerFailed(str(error))

    def _save_checkpoint(self) -> None:
        rng = self.world.gather(rng_state())  # every process's, so that a resumed run goes on exactly

        def write() -> None:
            state = {
                "model": self.model.state_dict(),
                "guide": self.guide.state_dict(),
                # The modules own their parameters; Pyro's param store holds the same tensors.
                "param_store_names": list(pyro.get_param_store().keys()),
                "optimizer": self.optim.get_state(),
                "rng": rng[0],
                "position": vars(self.position),
                "world_size": self.world.size,
            }
            if self.world.distributed:
                state["rng_ranks"] = rng
            try:
                rundir.save_state(self.run_dir, state, hint="there, or resume with another --out on another disk")
            except DiskFullError as error:
                raise TrainingError(f"{error}; {self.kept_checkpoint()}") from None

        self.world.on_main(write)
        self.saved_at = (self.position.epoch, self.position.batch)

    def _read_checkpoint(self) -> dict:
        """Rank 0: the run's checkpoint (on the CPU), checked against the number of processes."""
        # On the CPU: RNG states must stay CPU tensors; modules and optimiser states copy
        # themselves onto their parameters' device.
        try:
            state, previous = rundir.load_state(self.run_dir, map_location="cpu")
        except CheckpointError as error:
            raise TrainingError(f"cannot resume: {error}") from None
        # Another configuration's checkpoint (or one that no longer fits the model) is named in one line.
        rundir.check_state_fits(
            self.run_dir, state, self.config, (previous or Path(CHECKPOINT)).name, model=self.model, guide=self.guide
        )
        saved_size = state.get("world_size", 1)
        if saved_size != self.world.size:
            launch = "ccvae-pyro train" if saved_size == 1 else f"torchrun with {saved_size} processes in all (--nproc_per_node)"
            raise TrainingError(
                f"cannot resume: the run in {self.run_dir} was trained by {saved_size} process(es) and this launch has "
                f"{self.world.size}; resume it with {launch} (its random streams and batch shards are per process), "
                "or start a new run with another --out"
            )
        if previous:
            log.warning("resuming from %s (after %d epochs)", previous, state["position"]["epoch"])
        rundir.trim_epoch_metrics(self.run_dir, state["position"]["epoch"])
        return state

    def _load_checkpoint(self) -> None:
        state = self.world.on_main(self._read_checkpoint)
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.optim.set_state(state["optimizer"])
        set_rng_state(state.get("rng_ranks", [state["rng"]])[self.world.rank])
        self.position = _Position(**state["position"])
        self.saved_at = (self.position.epoch, self.position.batch)

    # --- the loop -----------------------------------------------------------------------

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        # Keyed by epoch, so a resumed run visits the same batches in the same order.
        generator = torch.Generator().manual_seed(self.config.run.seed * 100003 + epoch)
        return torch.randperm(len(self.data.train), generator=generator)

    def _shard(self, batch: torch.Tensor, batch_on_device: torch.Tensor):
        """This process's shard of a batch (CPU and device indices) and the position of its first point in the batch."""
        rank, size = self.world.rank, self.world.size
        sizes = [len(part) for part in batch.tensor_split(size)]
        return batch.tensor_split(size)[rank], batch_on_device.tensor_split(size)[rank], sum(sizes[:rank])

    def _step(self, epoch: int, number: int, batch: torch.Tensor, batch_on_device: torch.Tensor):
        """One optimiser step on batch ``number`` (this process's shard of it); the batch's loss, unread."""
        shard, shard_on_device, offset = self._shard(batch, batch_on_device)
        self.svi.stop_requested = self._stop_signal is not None
        self.family.before_step(self.model, self.guide, self.config.model, self._global_step() + 1, self._batches_per_epoch())
        with batch_noise(self.noise, epoch, number, offset, len(shard), len(batch)):
            if len(shard) == 0:
                return self.svi.step_without_data()
            return self.svi.step(*self._batch(shard, shard_on_device))

    def batch_gradients(self, epoch: int = 0, number: int = 0) -> tuple[float, dict[str, torch.Tensor]]:
        """The loss of batch ``number`` of epoch ``epoch`` and the gradient of every parameter (by
        its param store name), summed over the processes as a step takes them; nothing is
        updated. For checking that N processes compute one process's gradient."""
        batch = self._epoch_order(epoch).split(self.config.optimisation.batch_size)[number]
        shard, shard_on_device, offset = self._shard(batch, batch.to(self.device))
        with self.scope(), pyro.validation_enabled(False), batch_noise(self.noise, epoch, number, offset, len(shard), len(batch)):
            loss, parameters = self.svi.gradients(*self._batch(shard, shard_on_device)) if len(shard) else self.svi.gradients()
            store = pyro.get_param_store()
            gradients = {store.param_name(p): p.grad.detach().clone() for p in parameters if p.grad is not None}
            for p in parameters:
                p.grad = None
        return float(loss), gradients

    def fit(self) -> dict:
        """Train up to ``config.optimisation.epochs``; returns the summary (test accuracy per label)."""
        epochs = self.config.optimisation.epochs
        if self.position.epoch >= epochs and self.world.is_main:
            log.info("run already has %d epochs; nothing to do", self.position.epoch)
        try:
            # Shapes and supports were checked once by check_guide; per-step checks cost ~4%.
            with self.scope(), self._stop_on_signals(), pyro.validation_enabled(False):
                while self.position.epoch < epochs:
                    self._train_epoch()
                return self._summary()
        finally:
            self.close()

    @contextmanager
    def _stop_on_signals(self):
        """Ctrl-C, SIGTERM (a scheduler's) and SIGUSR1 stop at the next read point (never inside
        an optimiser step) after saving the position, on every process; a second Ctrl-C stops at once."""
        self._stop_signal, first_at = None, [0.0]
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            now = time.monotonic()
            if self._stop_signal is None:
                self._stop_signal, first_at[0] = signum, now
            elif signum == signal.SIGINT and not (self.world.launched and now - first_at[0] < SAME_SIGNAL_SECONDS):
                raise KeyboardInterrupt

        previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
        try:
            if self.world.distributed:  # a signal while blocked in a collective (a stopped peer) still ends this process
                with CollectiveWatchdog(self.world, self._blocked_exit_message):
                    yield
            else:
                yield
        finally:
            for number, old in previous.items():
                signal.signal(number, old)

    def _blocked_exit_message(self, signal_number: int, waited: float) -> str:
        """What a process says when a stop signal ends it inside a collective that does not end."""
        return (
            f"{signal.Signals(signal_number).name} while {self.world.describe()} had waited {waited:.0f} s for the other "
            "processes, which did not answer (one of them is stopped, e.g. by SIGSTOP or a debugger, or hung): "
            f"exiting without saving the batches since the last checkpoint; {self.kept_checkpoint()}; once every "
            f"process can run, continue with `{self._resume_command()}`"
        )

    def _resume_command(self) -> str:
        args = f"train --out {self.run_dir} --resume --epochs {self.config.optimisation.epochs}"
        if not self.world.launched:
            return f"ccvae-pyro {args}"
        per_node = os.environ.get("LOCAL_WORLD_SIZE", str(self.world.size))
        return f"torchrun --nproc_per_node {per_node} -m pyro_ccvae_cli {args}"

    def _read(self, pending: list, bar, rate_since: tuple[float, int]) -> bool:
        """Read the losses of the ``pending`` steps (``(images, loss)``), check them, count them
        and show them; returns whether to stop (a stop request, the same on every process)."""
        pos = self.position
        values = torch.stack([torch.as_tensor(loss, device=self.device) for _, loss in pending]).tolist()
        first = pos.batch - len(pending)  # the batch number of pending[0]
        for offset, ((images, _), value) in enumerate(zip(pending, values)):
            if not math.isfinite(value):
                bar.close()
                raise self._shared(TrainingError(
                    f"the loss became {value} at epoch {pos.epoch + 1}, batch {first + offset + 1}; "
                    f"{self.kept_checkpoint()}; try a new run with a lower --lr"
                ))  # fmt: skip
            pos.loss_sum += value
            pos.images += images
        if self._tracker is not None:
            steps_before = pos.epoch * self._batches_per_epoch() + first
            self._tracker.step_losses(steps_before, [v / images for (images, _), v in zip(pending, values)])
        started, images_then = rate_since
        rate = (pos.images - images_then) / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(loss=f"{pos.loss_sum / max(pos.images, 1):.1f}", img_s=f"{rate:.0f}")
        bar.update(len(pending))
        if self.world.distributed:
            return self.svi.take_stop_requests() > 0
        return self._stop_signal is not None

    def _train_epoch(self) -> None:
        config, pos = self.config.optimisation, self.position
        self._use_stage(stage_of_epoch(self.stages, pos.epoch))
        order = self._epoch_order(pos.epoch)
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
            stop_now = not self.world.distributed and self._stop_signal is not None
            if len(pending) >= self.read_every or number == len(batches) - 1 or stop_now:
                stop = self._read(pending, bar, (start, images_at_start))
                pending = []
                if stop:
                    bar.close()
                    self._interrupted_here()
        bar.close()
        self._check_finite()
        seconds = time.perf_counter() - start
        record = self.world.on_main(lambda: self._end_epoch(seconds, images_at_start))
        self.position = _Position(epoch=pos.epoch + 1)
        self._save_checkpoint()
        if self.world.is_main:
            log.info(
                "epoch %d: loss %.2f/image, valid accuracy %s, %.0f images/s%s",
                record["epoch"],
                record["loss"],
                "n/a" if record["valid_accuracy_mean"] is None else f"{record['valid_accuracy_mean']:.3f}",
                record["images_per_s"],
                f", supervision stage {record['sup_stage']}/{len(self.stages)} ({record['labelled']} labelled)" if "sup_stage" in record else "",
            )
        if record.get("bf16_elbo_gap") is not None:
            try:
                check_precision_gap(record["bf16_elbo_gap"], f"after epoch {record['epoch']} (saved)")
            except ValueError as error:
                raise self._shared(error) from None

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
            raise TrainingError(f"{error}; {self.kept_checkpoint()}") from None

    def _interrupted_here(self) -> None:
        """Save the position of a stop request and raise :class:`TrainingInterrupted`."""
        pos = self.position
        self._check_finite()
        self._save_checkpoint()
        got = self._stop_signal
        why = signal.Signals(got).name if got is not None else "another process's signal"
        raise TrainingInterrupted(
            f"interrupted ({why}) at epoch {pos.epoch + 1}, batch {pos.batch}; saved to {self.run_dir}; "
            f"continue with `{self._resume_command()}`",
            got if got is not None else signal.SIGTERM,
        )

    def _end_epoch(self, seconds: float, images_at_start: int) -> dict:
        """Rank 0: validate, append the epoch's line to ``metrics.jsonl`` (and TensorBoard); the line."""
        pos = self.position
        valid_probs = predict_probs(self.representation, self.data.valid.images, self.device)
        if not torch.isfinite(valid_probs).all():  # finite but overflowing parameters
            raise TrainingError(
                f"the predictions became NaN in epoch {pos.epoch + 1} (the parameters overflow); "
                f"{self.kept_checkpoint()}; try a new run with a lower --lr"
            )
        valid_acc = label_accuracy(valid_probs, self.data.valid)
        record = {
            "epoch": pos.epoch + 1,
            "loss": pos.loss_sum / max(pos.images, 1),
            "valid_accuracy": dict(zip(self.data.label_names, valid_acc)),
            "valid_accuracy_mean": _mean(valid_acc),
            "seconds": seconds,
            "images_per_s": (pos.images - images_at_start) / max(seconds, 1e-9),
        }
        if self.config.optimisation.sup_schedule is not None:
            record.update(sup_stage=self.stage + 1, labelled=len(self.stage_labelled[self.stage]))
        if uses_bf16(self.networks):
            record["bf16_elbo_gap"] = self._precision_gap()
        # An objective may count what its estimator did (the CCVAE: importance weights capped
        # in this epoch's batches; under torchrun, those of rank 0's shards).
        take_counts = getattr(self.elbo, "take_counts", None)
        if callable(take_counts):
            record.update(take_counts())
        rundir.append_epoch_metrics(self.run_dir, record)
        if self._tracker is not None:
            self._tracker.epoch(record, *self._reconstructions())
        return record

    @torch.no_grad()
    def _reconstructions(self) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Fixed validation images and their reconstructions (for TensorBoard), if the family reconstructs."""
        split = self.data.valid if len(self.data.valid) else self.data.test
        if RECONSTRUCT not in self.representation.capabilities or not len(split):
            return None, None
        x = as_float_images(split.images[:GRID_IMAGES], self.device)
        return x.cpu(), self.representation.reconstruct(x).float().cpu()

    def _summary(self) -> dict:
        def summarise() -> dict:
            test_acc = label_accuracy(predict_probs(self.representation, self.data.test.images, self.device), self.data.test)
            summary = {
                "epochs": self.position.epoch,
                "test_accuracy": dict(zip(self.data.label_names, test_acc)),
                "test_accuracy_mean": _mean(test_acc),
                "labelled": len(self.stage_labelled[stage_of_epoch(self.stages, max(self.position.epoch - 1, 0))]),
                "health": self._health(),
            }
            if self.config.optimisation.sup_schedule is not None:
                summary["sup_stages"] = self._schedule_summary()
            rundir.write_summary(self.run_dir, summary)
            return summary

        return self.world.on_main(summarise)

    def _health(self) -> dict:
        """:func:`~pyro_ccvae.health.check_health` on the validation split (the test split if it is empty)."""
        split_name, split = ("valid", self.data.valid) if len(self.data.valid) else ("test", self.data.test)
        with torch.no_grad():
            health = check_health(
                self.representation, split.images, mean_image(self.data.train.images), self.data.label_names,
                self.device, seed=self.config.run.seed,
            )
        return {"split": split_name, **health}


def train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    explicit: Mapping[str, str] = MappingProxyType({}),
    world: Optional[World] = None,
) -> dict:
    """Train (or resume) a run; see :class:`Trainer`."""
    return Trainer(config, run_dir, resume=resume, progress=progress, explicit=explicit, world=world).fit()
