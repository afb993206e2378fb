"""The run directory written by training: its files, and reading it for every analysis command.

A run directory is trusted like code only where its config names a guide by import path
(``module:attr``): loading it imports that module, so :func:`load_run` asks for ``trust=True``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyro
import torch

from .checkpoint import CheckpointError, DirectoryLock, check_own_directory, checkpoint_exists, load_checkpoint
from .config import TrainConfig
from .data import DataSplits, load_dataset
from .guides import GUIDES
from .model import CCVAEModel

log = logging.getLogger(__name__)

CONFIG, LABELLED, SPLITS, METRICS, CHECKPOINT, SUMMARY = (
    "config.json",
    "labelled.json",
    "splits.json",
    "metrics.jsonl",
    "checkpoint.pt",
    "summary.json",
)
#: held (flock) by the one process that writes the run.
LOCK = ".writer.lock"


class RunError(ValueError):
    """A missing or incomplete run directory; the message is one line."""


def is_run_config(config: dict) -> bool:
    """Whether a ``config.json`` object is a training run's (not a classifier's, not a stranger's)."""
    return {"dataset", "guide", "sup_frac"} <= config.keys()


def check_run_directory(path: Path) -> None:
    """Refuse a non-empty ``path`` that is not a run directory (``--out`` never overwrites a user's files)."""
    check_own_directory(path, CONFIG, is_run_config, "pyro-ccvae training run", ignore=(LOCK,))


def lock_run(path: Path) -> DirectoryLock:
    """The writer's lock on the run in ``path`` (which must exist); a :class:`RunError` if another process holds it."""
    lock = DirectoryLock(path, LOCK)
    if not lock.acquire():
        holder = lock.holder()
        raise RunError(
            f"{path} is in use by another training process{f' ({holder})' if holder else ''}; "
            "wait for it to finish or stop it, or choose another --out"
        )
    return lock


def check_data_matches(path: Path, data: DataSplits) -> None:
    """A :class:`RunError` unless ``data`` has the splits recorded in the run's ``splits.json``."""
    try:
        saved = json.loads((Path(path) / SPLITS).read_text())
    except FileNotFoundError:
        return  # a run from before splits were recorded
    except ValueError:
        raise RunError(f"{Path(path) / SPLITS} is not valid JSON; the run directory is damaged") from None
    now = data.manifest()
    for split in ("train", "valid", "test"):
        before, after = saved.get(split, []), now[split]
        if before != after:
            changed = next((b for b, a in zip(before, after) if b != a), None)
            detail = f"first difference at {changed!r}" if changed is not None else "a different number of images"
            raise RunError(
                f"the data no longer matches {Path(path) / SPLITS}: the {split} split has {len(after)} images, "
                f"the run {len(before)} ({detail}); pass --data-dir (and --cache-dir) with the data the run was trained on"
            )


@dataclass
class Run:
    """A trained run: its config, model and guide (in eval mode) and, if asked for, its data."""

    path: Path
    config: TrainConfig
    model: CCVAEModel
    guide: torch.nn.Module
    device: torch.device
    data: Optional[DataSplits] = None

    @property
    def label_names(self) -> list[str]:
        return list(self.config.data_info["label_names"])


def load_run(
    path: Path,
    device: str = "cpu",
    load_data: bool = True,
    trust: bool = False,
    data_dir: Optional[Path] = None,
    cache_dir: Optional[Path] = None,
) -> Run:
    """Load the model and guide of the run in ``path`` (and its data splits, by default).

    :param trust: allow a guide given by import path in the run's config (that imports code).
    :param data_dir: where the run's data lie now, if they moved; likewise ``cache_dir``.
    """
    from .training import build_model_and_guide, resolve_device

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory {path} does not exist; train one with `ccvae-pyro train --out {path}`")
    if not (path / CONFIG).exists() or not checkpoint_exists(path / CHECKPOINT):
        missing = CONFIG if not (path / CONFIG).exists() else CHECKPOINT
        raise RunError(f"{path} is not a complete run: {missing} is missing; train or resume it with `ccvae-pyro train`")
    try:
        config = TrainConfig.load(path / CONFIG)
    except (ValueError, TypeError) as error:
        raise RunError(f"{path / CONFIG} cannot be read ({' '.join(str(error).split())}); the run directory is damaged") from None
    if not config.data_info:
        raise RunError(f"{path / CONFIG} has no data_info; the run was never started")
    if config.guide not in GUIDES and not trust:
        raise RunError(
            f"{path / CONFIG} names the guide {config.guide!r}, and loading it imports and runs that code; "
            "pass --trust-run if you trust this run directory"
        )
    if data_dir is not None:
        config.data_dir = str(data_dir)
    if cache_dir is not None:
        config.cache_dir = str(cache_dir)
    config.make_paths_absolute()
    torch_device = resolve_device(device)
    pyro.clear_param_store()
    model, guide = build_model_and_guide(config)
    try:
        state, _ = load_checkpoint(path / CHECKPOINT, map_location=torch_device, trusted=trust)
    except CheckpointError as error:
        raise RunError(str(error)) from None
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    model.to(torch_device).eval()
    guide.to(torch_device).eval()
    data = None
    if load_data:
        data = load_dataset(config.dataset, config.data_options())
        check_data_matches(path, data)
    return Run(path, config, model, guide, torch_device, data)
