"""Setting a run up: what rank 0 reads from and checks in the run directory before the model
exists, in one step whose outcome every process gets at once (:func:`open_run`); the size check
of a step; the model (:func:`build_model`); and what rank 0 writes once everything else is
checked (:func:`write_run_files`: a set-up that fails leaves the run directory as it was)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch

from .. import run_directory, sizes
from ..checkpoint import CheckpointError
from ..config import TrainConfig
from ..data import DataSplits, load_dataset
from ..distributed import World
from ..models import get_family
from ..run_directory import CHECKPOINT, CONFIG, RunError
from ..supervision import labelled_order
from .batches import TrainingSet
from .checkpointing import SavedState
from .errors import TrainingError

log = logging.getLogger(__name__)


def choose_labelled(num_train: int, sup_frac: float, seed: int) -> torch.Tensor:
    """The fixed-seed labelled subset for a supervision rate (sorted indices)."""
    return labelled_order(num_train, _labelled_count(num_train, sup_frac, "--sup-frac"), seed).sort().values


def _labelled_count(num_train: int, sup_frac: float, flag: str) -> int:
    """:func:`~pyro_ccvae.run_directory.labelled_count`, warning when a rate above 0 labels no point."""
    count = run_directory.labelled_count(num_train, sup_frac)
    if count == 0 and sup_frac > 0:
        log.warning(
            "%s %g of %d training points rounds to 0 labelled points: the run trains without labels; "
            "give more than %.3g for one", flag, sup_frac, num_train, 0.5 / num_train,
        )  # fmt: skip
    return count


class RunDirectory:
    """Rank 0's hold on the run directory: the writer's lock, and whether set-up made the folder."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = None
        self._made = False

    def claim(self, resume: bool, tensorboard: bool) -> None:
        """Check the folder and take the writer's lock (after checking that what was asked for
        can run: a missing TensorBoard package then leaves no new run folder behind)."""
        if tensorboard:
            from ..tracking import require_tensorboard  # imports torch.utils.tensorboard: only when asked for

            require_tensorboard()
        if resume and not run_directory.has_run(self.path):
            raise TrainingError(f"cannot resume: {self.path} holds no {CONFIG} and {CHECKPOINT} from a previous run")
        run_directory.check_run_directory(self.path)
        self._made = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = run_directory.lock_run(self.path)

    def release(self) -> None:
        """Let another process write the run."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def remove_if_unused(self) -> None:
        """A set-up that failed leaves no folder behind that it made and that holds only its lock."""
        if self._made and {p.name for p in self.path.iterdir()} <= {run_directory.LOCK}:
            (self.path / run_directory.LOCK).unlink(missing_ok=True)
            self.path.rmdir()


def resolved_config(run_dir: Path, config: TrainConfig, resume: bool, explicit: Mapping[str, str]) -> TrainConfig:
    """The config to train with: on resume, the run's (see :func:`resumed_config`)."""
    if resume:
        config = resumed_config(run_dir, config, explicit)
    elif run_directory.has_checkpoint(run_dir):
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    else:  # typed from the guide's constructor ("rank=8" -> 8); a mistyped name stops here
        config.guide.options = get_family(config.model.name).guide_options(config.guide.name, config.guide.options)
    config.data.make_paths_absolute()
    return config


def resumed_config(run_dir: Path, config: TrainConfig, explicit: Mapping[str, str]) -> TrainConfig:
    """The run's config with ``config``'s epochs and device, and the ``explicit`` options that a
    resume may change; one that may not and differs is an error rather than silently ignored."""
    try:
        saved = run_directory.read_config(run_dir)
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
                f"{flag} cannot change when resuming: the run in {run_dir} uses "
                f"{old!r}; resume without it, or start a new run with another --out"
            )
    return saved


def labelled_subset(run_dir: Path, config: TrainConfig, num_train: int, resume: bool) -> torch.Tensor:
    """``labelled.json``: ``--sup-frac``'s subset (sorted) or, with a schedule, the first stage's
    points in the seeded permutation's order (stage k labels a prefix of it)."""
    optimisation = config.optimisation
    if resume:
        return run_directory.read_labelled(run_dir, num_train, optimisation.sup_frac)
    if optimisation.sup_schedule is None:
        return choose_labelled(num_train, optimisation.sup_frac, config.run.seed)
    return labelled_order(num_train, _labelled_count(num_train, optimisation.sup_frac, "--sup-schedule's first stage"), config.run.seed)


@dataclass
class Opening:
    """What set-up reads before the model exists; every process holds the same."""

    config: TrainConfig
    data: DataSplits
    #: what ``labelled.json`` holds (or will hold).
    labelled: torch.Tensor
    #: the checkpoint to resume from; None for a new run.
    saved: Optional[SavedState]


def open_run(directory: RunDirectory, config: TrainConfig, resume: bool, explicit: Mapping[str, str], world: World) -> Opening:
    """Rank 0, in one step: claim the run directory, resolve the config, load the data (building
    the cache the others then read), check it against the run's, choose or read the labelled
    subset and read the checkpoint to resume from; then every process gets what it read (its
    failure), and the other processes load the data."""
    loaded: list[DataSplits] = []

    def read() -> tuple[TrainConfig, torch.Tensor, Optional[SavedState]]:
        directory.claim(resume, config.execution.tensorboard)
        resolved = resolved_config(directory.path, config, resume, explicit)
        data = load_dataset(resolved.data.dataset, resolved.data.data_options(resolved.run.seed))
        loaded.append(data)  # rank 0's own: the others load theirs from the cache it built
        if resume:
            run_directory.check_data_matches(directory.path, data)
        labelled = labelled_subset(directory.path, resolved, len(data.train), resume)
        return resolved, labelled, read_checkpoint(directory.path, world.size) if resume else None

    config, labelled, saved = world.on_main(read)
    data = world.together(lambda: loaded[0] if world.is_main else load_dataset(config.data.dataset, config.data.data_options(config.run.seed)))
    return Opening(config, data, labelled, saved)


def read_checkpoint(run_dir: Path, world_size: int) -> SavedState:
    """Rank 0: the run's checkpoint (on the CPU), checked against the number of processes."""
    # On the CPU: RNG states must stay CPU tensors; modules and optimiser states copy
    # themselves onto their parameters' device.
    try:
        state, previous = run_directory.load_state(run_dir, map_location="cpu")
    except CheckpointError as error:
        raise TrainingError(f"cannot resume: {error}") from None
    saved_size = state.get("world_size", 1)
    if saved_size != world_size:
        launch = "ccvae-pyro train" if saved_size == 1 else f"torchrun with {saved_size} processes in all (--nproc_per_node)"
        raise TrainingError(
            f"cannot resume: the run in {run_dir} was trained by {saved_size} process(es) and this launch has "
            f"{world_size}; resume it with {launch} (its random streams and batch shards are per process), "
            "or start a new run with another --out"
        )
    if previous:
        log.warning("resuming from %s (after %d epochs)", previous, state["position"]["epoch"])
    return SavedState(state, (previous or Path(CHECKPOINT)).name)


def check_step_fits(config: TrainConfig, num_train: int, world: World, device: torch.device) -> None:
    """Refuse, before anything is allocated, a step that cannot fit in the device's memory
    (a huge ``--k-samples`` or ``--batch-size``), naming the option to lower (each process its own device's)."""
    info = config.data.info
    batch = min(config.optimisation.batch_size, num_train)
    shard = -(-batch // world.size)
    k = getattr(config.model, "k_samples", 0)
    images, samples = sizes.training_step_bytes(
        shard, image_size=info["image_size"], channels=info["channels"], num_labels=len(info["label_names"]),
        max_classes=max(info["num_classes"], default=2), z_char_dim=getattr(config.model, "z_char_dim", 1), k_samples=k,
    )  # fmt: skip
    needed = images + samples
    if device.type == "cpu":  # the processes of this node share its memory
        needed *= int(os.environ.get("LOCAL_WORLD_SIZE", world.size))
    with_k = f" and --k-samples {k}" if k else ""
    lower = "--k-samples" if samples > images else "--batch-size"
    try:
        sizes.require(needed, f"a training step with --batch-size {config.optimisation.batch_size}{with_k}", lower, device)
    except sizes.SizeError as error:
        raise TrainingError(str(error)) from None


def describe_data(family, config: TrainConfig, data: DataSplits) -> None:
    """Fill in what the family's model takes from the data set: its defaults and ``config.data.info``."""
    family.fill_defaults(config.model, config.data.dataset)
    config.data.info = {
        "label_names": list(data.label_names),
        "num_classes": list(data.num_classes),
        "channels": data.channels,
        "image_size": data.image_size,
        "num_train": len(data.train),
    }


def build_model(family, config: TrainConfig, batches: TrainingSet, world: World) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """The family's model, guide and representation on the device, checked on a few training
    points, with rank 0's parameters on every process."""
    model, guide = family.build_run(config)
    train, first = batches.train, batches.stage_labelled[0]
    # The label prior from every point whose label training uses: the first stage's subset holds the others.
    family.prepare(model, train.labels[first], train.mask[first])
    model.to(batches.device)
    guide.to(batches.device)
    representation = family.representation(model, guide, config.data.info, batches.device, config.model)
    # Consumes random numbers; a resumed run restores the RNG state afterwards.
    family.check(model, guide, *batches.first(4))
    # Every process built the same parameters from the same seed; rank 0's make sure of it.
    world.broadcast_tensors([*model.state_dict().values(), *guide.state_dict().values()])
    return model, guide, representation


def write_run_files(run_dir: Path, opening: Opening, resume: bool, nothing_to_do: bool,
                    open_tensorboard: Optional[Callable[[], None]] = None) -> None:
    """Rank 0, once everything is checked: the config (with the new epochs, device or data location
    on resume; unless there is ``nothing_to_do``) and, for a new run, what is written once; the
    TensorBoard writer (``open_tensorboard``) if asked for."""
    if not resume:
        run_directory.clear_tensorboard(run_dir)
    if open_tensorboard is not None:
        open_tensorboard()
    if not nothing_to_do:  # "nothing to do" changes nothing
        run_directory.write_config(run_dir, opening.config)
    if not resume:
        run_directory.write_labelled(run_dir, opening.labelled)
        run_directory.write_splits(run_dir, opening.data)
        run_directory.clear_epoch_metrics(run_dir)
