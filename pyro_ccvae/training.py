"""Training any model family (:mod:`pyro_ccvae.models`) with :class:`pyro.infer.SVI` and the
family's objective, into a run directory.

What a run directory holds, and all reading and writing of it, is :mod:`pyro_ccvae.run`'s.
"""
from __future__ import annotations

import logging
import math
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
from pyro.infer import SVI
from tqdm.auto import tqdm

from . import run as rundir
from .checkpoint import CheckpointError, DiskFullError, rng_state, set_rng_state
from .config import TrainConfig
from .data import DataSplits, as_float_images, load_dataset
from .devices import resolve_device
from .health import check_health, mean_image
from .models import get_family
from .prediction import label_accuracy, mean_of as _mean
from .run import CONFIG, CHECKPOINT, RunError

log = logging.getLogger(__name__)

#: on CUDA, move a whole split to the device when its images take less than this.
DEVICE_RESIDENT_BYTES = 4 << 30


class TrainingError(RuntimeError):
    """Training cannot go on; the message is one line (the last good checkpoint is kept)."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C: the position was saved and the run can be resumed."""


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
    count = int(round(sup_frac * num_train))
    perm = torch.randperm(num_train, generator=torch.Generator().manual_seed(seed))
    return perm[:count].sort().values


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
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        resume: bool = False,
        progress: bool = True,
        explicit: Mapping[str, str] = MappingProxyType({}),
    ):
        self.run_dir = Path(run_dir)
        self.progress = progress
        if resume and not rundir.has_run(self.run_dir):
            raise TrainingError(f"cannot resume: {self.run_dir} holds no {CONFIG} and {CHECKPOINT} from a previous run")
        rundir.check_run_directory(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = rundir.lock_run(self.run_dir)
        # The modules' Pyro parameters live in a store of the trainer's own, so that training
        # neither reads nor wipes the caller's (see :meth:`scope`).
        self._params: dict = {"params": {}, "constraints": {}}
        try:
            with self.scope():
                self._set_up(config, resume, explicit)
        except BaseException:
            self.close()
            raise

    @contextmanager
    def scope(self):
        """Run with the trainer's own Pyro parameter store (the caller's is restored on exit)."""
        with pyro.get_param_store().scope(state=self._params):
            yield

    def close(self) -> None:
        """Let another process write the run (``fit`` does this when it ends)."""
        self._lock.release()

    # --- set-up -------------------------------------------------------------------------

    def _set_up(self, config: TrainConfig, resume: bool, explicit: Mapping[str, str]) -> None:
        if resume:
            config = self._resumed_config(config, explicit)
        elif rundir.has_checkpoint(self.run_dir):
            raise TrainingError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out")
        else:  # typed from the guide's constructor ("rank=8" -> 8); a mistyped name stops here
            config.guide.options = get_family(config.model.name).guide_options(config.guide.name, config.guide.options)
        config.data.make_paths_absolute()
        self.config = config
        self.device = resolve_device(config.run.device)
        pyro.set_rng_seed(config.run.seed)

        self.data: DataSplits = load_dataset(config.data.dataset, config.data.data_options(config.run.seed))
        if resume:
            rundir.check_data_matches(self.run_dir, self.data)
        self.family = family = get_family(config.model.name)
        family.fill_defaults(config.model, config.data.dataset)
        config.data.info = {
            "label_names": list(self.data.label_names),
            "num_classes": list(self.data.num_classes),
            "channels": self.data.channels,
            "image_size": self.data.image_size,
            "num_train": len(self.data.train),
        }
        self.labelled = self._labelled_subset(resume)
        train = self.data.train
        keep = torch.zeros(len(train), dtype=torch.bool)
        keep[self.labelled] = True
        self.train_mask = train.mask & keep.unsqueeze(-1)
        if self.device.type == "cuda" and train.images.numel() < DEVICE_RESIDENT_BYTES:
            self.images = train.images.to(self.device)
        else:
            self.images = train.images

        self.model, self.guide = family.build_run(config)
        family.prepare(self.model, train.labels[self.labelled], train.mask[self.labelled])
        self.model.to(self.device)
        self.guide.to(self.device)
        self.representation = family.representation(self.model, self.guide, config.data.info, self.device, config.model)
        self._check_guide()
        self.optim = pyro.optim.Adam(self._optim_args)
        self.elbo = family.objective(config.model)
        self.svi = SVI(self.model, self.guide, self.optim, self.elbo)
        self.position = _Position()
        #: (epoch, batch) of the checkpoint on disk, None while there is none.
        self.saved_at: Optional[tuple[int, int]] = None
        if resume:
            self._load_checkpoint()
            rundir.write_config(self.run_dir, config)  # with the new epochs, device or data location
        else:
            rundir.write_config(self.run_dir, config)
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

    def _optim_args(self, param_name: str) -> dict:
        factor = self.family.learning_rate_factor(self.config.model, param_name)
        return {"lr": self.config.optimisation.lr * factor}

    def _labelled_subset(self, resume: bool) -> torch.Tensor:
        if resume:
            return rundir.read_labelled(self.run_dir)
        return choose_labelled(len(self.data.train), self.config.optimisation.sup_frac, self.config.run.seed)

    def _batch(self, index: torch.Tensor):
        x = as_float_images(self.images[index.to(self.images.device)], self.device)
        y = self.data.train.labels[index].to(self.device)
        mask = self.train_mask[index].to(self.device)
        return x, y, mask

    def _check_guide(self) -> None:
        # Consumes random numbers; a resumed run restores the RNG state afterwards.
        index = torch.arange(min(4, len(self.data.train)))
        self.family.check(self.model, self.guide, *self._batch(index))

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
        """Stop before saving parameters that are NaN or infinite (a finite loss does not rule them out)."""
        bad = self._non_finite_state()
        if bad is not None:
            raise TrainingError(
                f"the parameters became NaN or infinite ({bad}) in epoch {self.position.epoch + 1}; "
                f"{self.kept_checkpoint()}; try a new run with a lower --lr"
            )

    def _save_checkpoint(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            # The modules own their parameters; Pyro's param store holds the same tensors.
            "param_store_names": list(pyro.get_param_store().keys()),
            "optimizer": self.optim.get_state(),
            "rng": rng_state(),
            "position": vars(self.position),
        }
        try:
            rundir.save_state(self.run_dir, state, hint="there, or resume with another --out on another disk")
        except DiskFullError as error:
            raise TrainingError(f"{error}; {self.kept_checkpoint()}") from None
        self.saved_at = (self.position.epoch, self.position.batch)

    def _load_checkpoint(self) -> None:
        # On the CPU: RNG states must stay CPU tensors; modules and optimiser states copy
        # themselves onto their parameters' device.
        try:
            state, previous = rundir.load_state(self.run_dir, map_location="cpu")
        except CheckpointError as error:
            raise TrainingError(f"cannot resume: {error}") from None
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.optim.set_state(state["optimizer"])
        set_rng_state(state["rng"])
        self.position = _Position(**state["position"])
        self.saved_at = (self.position.epoch, self.position.batch)
        if previous:
            log.warning("resuming from %s (after %d epochs)", previous, self.position.epoch)
        rundir.trim_epoch_metrics(self.run_dir, self.position.epoch)

    # --- the loop -----------------------------------------------------------------------

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        # Keyed by epoch, so a resumed run visits the same batches in the same order.
        generator = torch.Generator().manual_seed(self.config.run.seed * 100003 + epoch)
        return torch.randperm(len(self.data.train), generator=generator)

    def fit(self) -> dict:
        """Train up to ``config.optimisation.epochs``; returns the summary (test accuracy per label)."""
        epochs = self.config.optimisation.epochs
        if self.position.epoch >= epochs:
            log.info("run already has %d epochs; nothing to do", self.position.epoch)
        try:
            # Shapes and supports were checked once by check_guide; per-step checks cost ~4%.
            with self.scope(), self._stop_on_interrupt(), pyro.validation_enabled(False):
                while self.position.epoch < epochs:
                    self._train_epoch()
                return self._summary()
        finally:
            self.close()

    @contextmanager
    def _stop_on_interrupt(self):
        """Ctrl-C stops at the next batch boundary (never inside an optimiser step); twice, at once."""
        self._interrupted = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _train_epoch(self) -> None:
        config, pos = self.config.optimisation, self.position
        order = self._epoch_order(pos.epoch)
        batches = order.split(config.batch_size)
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
        for index in batches[pos.batch :]:
            loss = self.svi.step(*self._batch(index))
            if not math.isfinite(loss):
                bar.close()
                raise TrainingError(
                    f"the loss became {loss} at epoch {pos.epoch + 1}, batch {pos.batch + 1}; "
                    f"{self.kept_checkpoint()}; try a new run with a lower --lr"
                )
            pos.loss_sum += loss
            pos.images += len(index)
            pos.batch += 1
            rate = (pos.images - images_at_start) / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{pos.loss_sum / pos.images:.1f}", img_s=f"{rate:.0f}")
            bar.update()
            if self._interrupted:
                bar.close()
                self._check_finite()
                self._save_checkpoint()
                raise TrainingInterrupted(
                    f"interrupted at epoch {pos.epoch + 1}, batch {pos.batch}; saved to {self.run_dir}; continue "
                    f"with `ccvae-pyro train --out {self.run_dir} --resume --epochs {config.epochs}`"
                )
        bar.close()
        self._check_finite()
        seconds = time.perf_counter() - start
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
        # An objective may count what its estimator did (the CCVAE: importance weights capped
        # in this epoch's batches, those run by this process).
        take_counts = getattr(self.elbo, "take_counts", None)
        if callable(take_counts):
            record.update(take_counts())
        self.position = pos = _Position(epoch=pos.epoch + 1)
        rundir.append_epoch_metrics(self.run_dir, record)
        self._save_checkpoint()
        log.info(
            "epoch %d: loss %.2f/image, valid accuracy %s, %.0f images/s",
            record["epoch"],
            record["loss"],
            "n/a" if record["valid_accuracy_mean"] is None else f"{record['valid_accuracy_mean']:.3f}",
            record["images_per_s"],
        )

    def _summary(self) -> dict:
        test_acc = label_accuracy(predict_probs(self.representation, self.data.test.images, self.device), self.data.test)
        summary = {
            "epochs": self.position.epoch,
            "test_accuracy": dict(zip(self.data.label_names, test_acc)),
            "test_accuracy_mean": _mean(test_acc),
            "labelled": len(self.labelled),
            "health": self._health(),
        }
        rundir.write_summary(self.run_dir, summary)
        return summary

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
) -> dict:
    """Train (or resume) a run; see :class:`Trainer`."""
    return Trainer(config, run_dir, resume=resume, progress=progress, explicit=explicit).fit()
