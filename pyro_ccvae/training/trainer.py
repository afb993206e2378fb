"""The trainer: sets a run up (:mod:`.setup`), then composes the loop (:mod:`.loop`) with the
training set on the device (:mod:`.batches`), checkpoints (:mod:`.checkpointing`), stop
requests (:mod:`.signals`) and the report (:mod:`.report`)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional

import pyro

from ..acceleration import accelerate, check_precision_gap, uses_bf16
from ..config import TrainConfig
from ..distributed import DataParallelSVI, World, rank_seed
from ..models import get_family
from ..noise import noise_for
from ..run_directory import trim_epoch_metrics
from ..supervision import Stage, stage_of_epoch
from .batches import TrainingSet
from .checkpointing import Checkpoints
from .loop import Loop
from .report import EpochReport
from .setup import Opening, RunDirectory, build_model, check_step_fits, describe_data, open_run, write_run_files
from .signals import StopRequests, resume_command

log = logging.getLogger(__name__)


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
        self.directory = RunDirectory(self.run_dir)
        self.report: Optional[EpochReport] = None
        self._owns_group = False
        # The modules' Pyro parameters live in a store of the trainer's own, so that training
        # neither reads nor wipes the caller's (see :meth:`scope`).
        self._params: dict = {"params": {}, "constraints": {}}
        try:
            self.device = self.world.device(config.run.device)
            self._owns_group = self.world.join(self.device)
            with self.scope():
                self._set_up(config, resume, explicit, progress and self.world.is_main)
        except BaseException:
            self.close()
            self.directory.remove_if_unused()
            raise

    @contextmanager
    def scope(self):
        """Run with the trainer's own Pyro parameter store (the caller's is restored on exit)."""
        with pyro.get_param_store().scope(state=self._params):
            yield

    def close(self) -> None:
        """Let another process write the run, and leave the process group (``fit`` does this when it ends)."""
        if self.report is not None:
            self.report.close()
        self.directory.release()
        if self._owns_group:
            self._owns_group = False
            World.leave()

    def _set_up(self, config: TrainConfig, resume: bool, explicit: Mapping[str, str], progress: bool) -> None:
        world, device = self.world, self.device
        opening = open_run(self.directory, config, resume, explicit, world)
        self.config, self.data, self.labelled = config, data, labelled = opening.config, opening.data, opening.labelled
        pyro.set_rng_seed(config.run.seed)
        self.family = family = get_family(config.model.name)
        describe_data(family, config, data)
        world.together(lambda: check_step_fits(config, len(data.train), world, device))  # one refusal stops all
        stages = config.optimisation.stages() or (Stage(config.optimisation.sup_frac, None),)
        self.batches = batches = TrainingSet(data.train, stages, labelled, device, world, config.optimisation.batch_size, config.run.seed)
        #: each supervision stage's labelled subset.
        self.stage_labelled = batches.stage_labelled
        model, guide, self.representation = build_model(family, config, batches, world)
        self.model, self.guide = model, guide
        execution = config.execution
        networks = accelerate((model, guide), device, execution.precision, execution.compile)
        self.optim = pyro.optim.Adam(self._optim_args)
        self.elbo = family.objective(config.model)
        self.svi = DataParallelSVI(model, guide, self.optim, self.elbo, world)
        self.checkpoints = Checkpoints(self.run_dir, world, model, guide, self.optim)
        self.stops = StopRequests(world, self.checkpoints.kept, resume_command(self.run_dir, config.optimisation.epochs, world))
        self.report = EpochReport(self.run_dir, data, self.representation, device, config.run.seed)
        self.loop = Loop(config, world, family, self.svi, networks, noise_for(execution.noise, config.run.seed), batches,
                         self.checkpoints, self.stops, self.report, self.run_dir, progress)  # fmt: skip
        if opening.saved is not None:
            self.loop.position = self.checkpoints.restore(opening.saved, config)
            batches.use_stage(stage_of_epoch(stages, self.position.epoch))
        elif world.distributed:
            pyro.set_rng_seed(rank_seed(config.run.seed, world.rank))  # each process its own stream
        world.on_main(lambda: self._commit(opening, resume, uses_bf16(networks)))

    def _commit(self, opening: Opening, resume: bool, bf16: bool) -> None:
        """Rank 0, after every process's checks: the last check (bf16 against fp32) and what changes the run directory."""
        if resume:
            trim_epoch_metrics(self.run_dir, self.position.epoch)
        if bf16:
            check_precision_gap(self.loop.precision_gap(), "before the first step")
        tensorboard = None
        if self.config.execution.tensorboard:
            tensorboard = lambda: self.report.open_tensorboard(self.loop.global_step() + 1 if resume else None)  # noqa: E731
        nothing_to_do = resume and self.position.epoch >= self.config.optimisation.epochs
        write_run_files(self.run_dir, opening, resume, nothing_to_do, tensorboard)

    def _optim_args(self, param_name: str) -> dict:
        factor = self.family.learning_rate_factor(self.config.model, param_name)
        return {"lr": self.config.optimisation.lr * factor}

    @property
    def position(self):
        """Where training stands (:class:`~.checkpointing.Position`)."""
        return self.loop.position

    def fit(self) -> dict:
        """Train up to ``config.optimisation.epochs``; returns the summary (test accuracy per label)."""
        if self.position.epoch >= self.config.optimisation.epochs and self.world.is_main:
            log.info("run already has %d epochs; nothing to do", self.position.epoch)
        try:
            # Shapes and supports were checked once by the family's check; per-step checks cost ~4%.
            with self.scope(), self.stops.catching(), pyro.validation_enabled(False):
                self.loop.run()
                return self.world.on_main(self._summary)
        finally:
            self.close()

    def _summary(self) -> dict:
        epochs = self.position.epoch
        labelled = len(self.stage_labelled[stage_of_epoch(self.batches.stages, max(epochs - 1, 0))])
        schedule = self.batches.schedule_summary(self.config.optimisation.epochs) if self.config.optimisation.sup_schedule else None
        return self.report.summary(epochs, labelled, schedule)


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
