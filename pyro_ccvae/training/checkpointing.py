"""Training's checkpoints: where training stands, saving it (every process's random state with
it, so that a resumed run goes on exactly), restoring it on resume (rank 0 reads it in
:func:`~.setup.open_run`), and refusing to save parameters that are not finite. The file format (checksums, the previous copy) is
:mod:`pyro_ccvae.checkpoint`'s; the run directory's layout :mod:`pyro_ccvae.run_directory`'s."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyro
import torch

from .. import run_directory
from ..checkpoint import DiskFullError, rng_state, set_rng_state
from ..config import TrainConfig
from ..distributed import World
from .errors import TrainingError, shared

@dataclass
class Position:
    """Where training stands: ``epoch`` epochs complete, ``batch`` batches into the next one."""

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    images: int = 0


@dataclass
class SavedState:
    """A run's checkpoint as rank 0 read it (on the CPU), and the file it came from."""

    state: dict
    file: str


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


class Checkpoints:
    """Saves and restores the model's and guide's parameters, the optimiser's state and the
    position in ``run_dir`` (rank 0 writes; every process's random state goes in)."""

    def __init__(self, run_dir: Path, world: World, model: torch.nn.Module, guide: torch.nn.Module, optim):
        self.run_dir, self.world, self.model, self.guide, self.optim = run_dir, world, model, guide, optim
        #: (epoch, batch) of the checkpoint on disk, None while there is none.
        self.saved_at: Optional[tuple[int, int]] = None

    def kept(self) -> str:
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

    def check_finite(self, epoch: int) -> None:
        """Stop before saving parameters that are NaN or infinite (a finite loss does not rule them
        out) in epoch ``epoch`` (0-based). Every process holds the same parameters, so every process stops alike."""
        bad = self._non_finite_state()
        if bad is not None:
            raise shared(self.world, TrainingError(
                f"the parameters became NaN or infinite ({bad}) in epoch {epoch + 1}; "
                f"{self.kept()}; try a new run with a lower --lr"
            ))  # fmt: skip

    def save(self, position: Position) -> None:
        rng = self.world.gather(rng_state())  # every process's, so that a resumed run goes on exactly

        def write() -> None:
            state = {
                "model": self.model.state_dict(),
                "guide": self.guide.state_dict(),
                # The modules own their parameters; Pyro's param store holds the same tensors.
                "param_store_names": list(pyro.get_param_store().keys()),
                "optimizer": self.optim.get_state(),
                "rng": rng[0],
                "position": vars(position),
                "world_size": self.world.size,
            }
            if self.world.distributed:
                state["rng_ranks"] = rng
            try:
                run_directory.save_state(self.run_dir, state, hint="there, or resume with another --out on another disk")
            except DiskFullError as error:
                raise TrainingError(f"{error}; {self.kept()}") from None

        self.world.on_main(write)
        self.saved_at = (position.epoch, position.batch)

    def restore(self, saved: SavedState, config: TrainConfig) -> Position:
        """Load ``saved`` (every process holds it) into the model, guide, optimiser and this
        process's random state; the position it was saved at."""
        try:  # another configuration's checkpoint (or one that no longer fits the model) is named in one line
            run_directory.check_state_fits(self.run_dir, saved.state, config, saved.file, model=self.model, guide=self.guide)
        except run_directory.RunError as error:
            raise shared(self.world, error) from None
        state = saved.state
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.optim.set_state(state["optimizer"])
        set_rng_state(state.get("rng_ranks", [state["rng"]])[self.world.rank])
        position = Position(**state["position"])
        self.saved_at = (position.epoch, position.batch)
        return position
