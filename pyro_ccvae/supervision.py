"""Supervision schedules (``--sup-schedule 0.9:40,0.5:40,0.1:40``): the labelled subset shrinks
from stage to stage.

A schedule is ``FRAC:EPOCHS`` stages in order; the last stage may leave out ``:EPOCHS``, and then
lasts until ``--epochs``. The fractions must not increase, so that the subsets nest: one seeded
permutation of the training indices is drawn, and stage ``k`` labels its first
``round(FRAC_k * N)`` points. Epochs after the schedule's end (a run resumed with a larger
``--epochs``) stay in the last stage.

Parsing imports neither torch nor Pyro (the command line checks a schedule before loading them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

from .errors import UserError

if TYPE_CHECKING:
    import torch

FLAG = "--sup-schedule"
EXAMPLE = "0.9:40,0.5:40,0.1:40"


@dataclass(frozen=True)
class Stage:
    """One stage: the fraction of training points labelled, for ``epochs`` epochs (``None``: until the end)."""

    sup_frac: float
    epochs: Optional[int]


def parse_schedule(spec: str) -> tuple[Stage, ...]:
    """The stages of ``FRAC:EPOCHS,...``; a one-line ``ValueError`` naming the stage that is
    malformed, out of range, or whose fraction is above the one before."""
    parts = [part.strip() for part in spec.split(",")]
    if not spec.strip():
        raise UserError(f"{FLAG} is empty; give FRAC:EPOCHS stages, e.g. {EXAMPLE}")
    stages: list[Stage] = []
    for number, part in enumerate(parts, start=1):
        frac_text, has_epochs, epochs_text = part.partition(":")
        where = f"{FLAG} stage {number} {part!r}"
        try:
            frac = float(frac_text)
        except ValueError:
            raise UserError(f"{where} is not FRAC:EPOCHS (e.g. 0.5:40)") from None
        if not (math.isfinite(frac) and 0.0 <= frac <= 1.0):
            raise UserError(f"{where}: the fraction must be in [0, 1]")
        epochs: Optional[int] = None
        if has_epochs:
            if not epochs_text.strip().isdigit() or int(epochs_text) <= 0:
                raise UserError(f"{where}: the epochs must be a positive whole number")
            epochs = int(epochs_text)
        elif number < len(parts):
            raise UserError(f"{where} has no :EPOCHS; only the last stage may leave them out (it then lasts until --epochs)")
        if stages and frac > stages[-1].sup_frac:
            raise UserError(
                f"{where}: the fractions must not increase (the labelled subsets nest), and {frac:g} is above "
                f"stage {number - 1}'s {stages[-1].sup_frac:g}"
            )
        stages.append(Stage(frac, epochs))
    return tuple(stages)


def format_schedule(stages: Sequence[Stage]) -> str:
    """The canonical text of a schedule (what ``config.json`` records)."""
    return ",".join(f"{s.sup_frac!r}" + ("" if s.epochs is None else f":{s.epochs}") for s in stages)


def check_epochs(stages: Sequence[Stage], epochs: int) -> None:
    """A one-line ``ValueError`` unless the stages fill ``epochs`` (``--epochs``) exactly: every
    stage's epochs add up to it, or those before an open last stage leave it at least one."""
    fixed = sum(s.epochs for s in stages if s.epochs is not None)
    if stages[-1].epochs is not None and fixed != epochs:
        raise UserError(
            f"{FLAG}'s stages last {fixed} epochs but --epochs is {epochs}; make them add up, or leave out the "
            "last stage's epochs (e.g. 0.9:40,0.1) so that it lasts until --epochs"
        )
    if stages[-1].epochs is None and fixed >= epochs:
        raise UserError(f"{FLAG}'s stages before the last last {fixed} epochs, leaving none of --epochs {epochs} to the last")


def stage_of_epoch(stages: Sequence[Stage], epoch: int) -> int:
    """The stage (0-based) of epoch ``epoch`` (0-based); after the schedule's end, the last."""
    end = 0
    for number, stage in enumerate(stages):
        if stage.epochs is None:
            return number
        end += stage.epochs
        if epoch < end:
            return number
    return len(stages) - 1


def stage_spans(stages: Sequence[Stage], epochs: int) -> list[tuple[int, int]]:
    """Each stage's first and last epoch (1-based, inclusive) in a run of ``epochs`` epochs (the
    last stage's last is ``epochs``; a stage that a shorter run never reaches is left out)."""
    spans, start = [], 1
    for number, stage in enumerate(stages):
        last = epochs if stage.epochs is None or number == len(stages) - 1 else start + stage.epochs - 1
        if start > epochs:
            break
        spans.append((start, min(last, epochs)))
        start = last + 1
    return spans


def stage_counts(stages: Sequence[Stage], num_train: int) -> list[int]:
    """The labelled points of each stage (as ``--sup-frac`` rounds: to the nearest)."""
    return [int(round(stage.sup_frac * num_train)) for stage in stages]


def labelled_order(num_train: int, count: int, seed: int) -> "torch.Tensor":
    """The first ``count`` points of the seeded permutation of the training indices, in its order:
    stage ``k`` labels a prefix of it. Its sorted prefix of ``round(f * N)`` is ``--sup-frac f``'s subset."""
    import torch

    return torch.randperm(num_train, generator=torch.Generator().manual_seed(seed))[:count]


def nested_subsets(order: "torch.Tensor", counts: Sequence[int]) -> list["torch.Tensor"]:
    """Each stage's labelled subset (sorted indices): the first ``counts[k]`` of ``order``."""
    return [order[:count].sort().values for count in counts]
