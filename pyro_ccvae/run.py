"""The run directory: the one contract between ``train`` and every command that reads a run.

This module owns every file name of a run directory and all their reading and writing; training
(:mod:`pyro_ccvae.training`) and analysis (:mod:`pyro_ccvae.analysis`) use it and never import
each other::

    config.json      the TrainConfig, nested by section (model, data, guide, optimisation, run),
                     with the data's label spec (names, classes per label), channels and image size in data.info
    labelled.json    indices (into the training split) of the points whose labels are used
    splits.json      which source item went to which split
    metrics.jsonl    one line per epoch: loss, validation accuracy, speed
    checkpoint.pt    model, guide, optimiser, RNG states and position; written atomically,
                     with its sha256 in checkpoint.pt.sha256.json and the previous one kept
                     as checkpoint.prev.pt
    summary.json     test accuracy per label and the health checks after the last epoch
    tensorboard/     TensorBoard event files, with ``--tensorboard`` (:mod:`pyro_ccvae.tracking`)
    metrics.json     the analysis commands' metrics, one section per metric family
    figures/         the analysis commands' PNG figures
    report.html      every metric and figure on one page
    attribute_classifier/   the ground-truth judge ``evaluate`` trains for data with known factors

``config.json`` loads strictly: an unknown or missing key is a one-line :class:`RunError` naming
it. A flat ``config.json`` (version 0.1, before the sections) is converted on reading.

A run directory is trusted like code only where its config names a guide by import path
(``module:attr``): loading it imports that module, so :func:`load_run` asks for ``trust=True``.
Loading a run leaves the caller's Pyro parameter store alone: the run's modules keep their
parameters in a store of their own, entered with :meth:`Run.scope`.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import pyro
import torch

from .checkpoint import (
    CheckpointError,
    DirectoryLock,
    atomic_write_text,
    check_own_directory,
    checkpoint_exists,
    load_checkpoint,
    previous_path,
    remove_stale_temporaries,
    save_checkpoint,
)
from .config import TrainConfig
from .data import DataSplits, load_dataset
from .devices import resolve_device
from .models import Representation, get_family

log = logging.getLogger(__name__)

CONFIG, LABELLED, SPLITS, METRICS, CHECKPOINT, SUMMARY = (
    "config.json",
    "labelled.json",
    "splits.json",
    "metrics.jsonl",
    "checkpoint.pt",
    "summary.json",
)
ANALYSIS_METRICS, FIGURES, REPORT, ATTRIBUTE_CLASSIFIER = "metrics.json", "figures", "report.html", "attribute_classifier"
TENSORBOARD = "tensorboard"
#: held (flock) by the one process that writes the run.
LOCK = ".writer.lock"
#: ``config.json``'s ``version``: 2 is nested by section; version 0.1 wrote no version and was flat.
CONFIG_VERSION = 2


class RunError(ValueError):
    """A missing, incomplete or damaged run directory; the message is one line."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# --- config.json ----------------------------------------------------------------------------


def is_run_config(config: dict) -> bool:
    """Whether a ``config.json`` object is a training run's (not a classifier's, not a stranger's)."""
    return {"version", "model", "guide"} <= config.keys() or {"dataset", "guide", "sup_frac"} <= config.keys()


def config_from_json(raw: Any) -> TrainConfig:
    """The config of a ``config.json`` object, nested or (version 0.1) flat; ``ValueError`` names
    the first key that is unknown or missing."""
    if not isinstance(raw, dict):
        raise ValueError("it is not a JSON object")
    if "version" not in raw:
        return TrainConfig.from_legacy(raw)
    if raw["version"] != CONFIG_VERSION:
        raise ValueError(f"version {raw['version']!r} is not one this pyro-ccvae reads ({CONFIG_VERSION}); use the version that wrote it")
    return TrainConfig.from_dict({k: v for k, v in raw.items() if k != "version"})


def read_config(path: Path) -> TrainConfig:
    """The config of the run in ``path``; a one-line :class:`RunError` when it cannot be read."""
    file = Path(path) / CONFIG
    try:
        return config_from_json(json.loads(file.read_text()))
    except (ValueError, TypeError) as error:
        raise RunError(f"{file} cannot be read ({_one_line(error)}); the run directory is damaged") from None


def write_config(path: Path, config: TrainConfig) -> None:
    atomic_write_text(Path(path) / CONFIG, json.dumps({"version": CONFIG_VERSION, **config.to_dict()}, indent=2) + "\n")


# --- the writer, and what training writes once ------------------------------------------------


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
    remove_stale_temporaries(path, CHECKPOINT)
    return lock


def has_run(path: Path) -> bool:
    """Whether ``path`` holds a config and a checkpoint (a run that can be resumed or read)."""
    return (Path(path) / CONFIG).exists() and has_checkpoint(path)


def has_checkpoint(path: Path) -> bool:
    """Whether ``path`` holds a checkpoint (or its previous copy), good or not."""
    return checkpoint_exists(Path(path) / CHECKPOINT)


def write_labelled(path: Path, labelled: torch.Tensor) -> None:
    atomic_write_text(Path(path) / LABELLED, json.dumps(labelled.tolist()) + "\n")


def read_labelled(path: Path) -> torch.Tensor:
    return torch.tensor(json.loads((Path(path) / LABELLED).read_text()), dtype=torch.long)


def write_splits(path: Path, data: DataSplits) -> None:
    atomic_write_text(Path(path) / SPLITS, json.dumps(data.manifest()) + "\n")


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


# --- metrics.jsonl ----------------------------------------------------------------------------


def clear_epoch_metrics(path: Path) -> None:
    (Path(path) / METRICS).unlink(missing_ok=True)


def tensorboard_dir(path: Path) -> Path:
    """``RUN/tensorboard``, where ``--tensorboard`` writes its event files."""
    return Path(path) / TENSORBOARD


def clear_tensorboard(path: Path) -> None:
    """Remove the event files of an earlier start of this run (a new run starts from step 0)."""
    shutil.rmtree(tensorboard_dir(path), ignore_errors=True)


def append_epoch_metrics(path: Path, record: dict) -> None:
    with open(Path(path) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def trim_epoch_metrics(path: Path, last_epoch: int) -> None:
    """Keep the metric lines up to ``last_epoch`` (a crash can come between a checkpoint and its
    line), and drop lines that a kill left partial, blank or NUL-filled."""
    file = Path(path) / METRICS
    if not file.exists():
        return
    kept, damaged = [], []
    for number, line in enumerate(file.read_bytes().decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            epoch = json.loads(line)["epoch"]
        except (ValueError, KeyError, TypeError):
            damaged.append(number)
            continue
        if epoch <= last_epoch:
            kept.append(line)
    if damaged:
        log.warning(
            "%s: skipping %d damaged line(s) (line %s: partial, blank or NUL-filled, from an interrupted write)",
            file, len(damaged), ", ".join(map(str, damaged[:5])),
        )  # fmt: skip
    atomic_write_text(file, "".join(line + "\n" for line in kept))


# --- checkpoints ------------------------------------------------------------------------------


def save_state(path: Path, state: dict, hint: str) -> None:
    """Save a checkpoint ``state`` into the run (see :func:`pyro_ccvae.checkpoint.save_checkpoint`)."""
    save_checkpoint(state, Path(path) / CHECKPOINT, hint=hint)


def load_state(path: Path, map_location=None, trusted: bool = False) -> tuple[dict, Optional[Path]]:
    """The run's newest good checkpoint: ``(state, the previous copy's path if that is what was read)``.
    ``trusted``: see :func:`pyro_ccvae.checkpoint.load_checkpoint`.

    :raises CheckpointError: there is none.
    """
    state, used = load_checkpoint(Path(path) / CHECKPOINT, map_location=map_location, trusted=trusted)
    return state, used if used == previous_path(Path(path) / CHECKPOINT) else None


# --- JSON results -----------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """``value`` with tensors and numpy values made plain, and non-finite floats made ``None``.

    Strict JSON has no NaN or infinity; an undefined metric is reported as ``null``.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return json_safe(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_json(file: Path) -> dict:
    return json.loads(file.read_text()) if file.exists() else {}


def write_summary(path: Path, summary: dict) -> None:
    atomic_write_text(Path(path) / SUMMARY, json.dumps(summary, indent=2) + "\n")


def read_summary(path: Path) -> dict:
    """The ``summary.json`` of a run (or of a classifier's directory); empty if there is none."""
    return _read_json(Path(path) / SUMMARY)


def read_metrics(path: Path) -> dict:
    """The run's ``metrics.json`` (empty if there is none yet)."""
    return _read_json(Path(path) / ANALYSIS_METRICS)


def update_metrics(path: Path, sections: dict, remove: Iterable[str] = ()) -> dict:
    """Replace ``sections`` (name -> dict) in ``RUN/metrics.json`` and drop the sections named in
    ``remove`` (a command's own sections it did not recompute: no stale answers), atomically;
    returns the whole file."""
    metrics = read_metrics(path)
    for name in remove:
        metrics.pop(name, None)
    metrics.update(json_safe(sections))
    atomic_write_text(Path(path) / ANALYSIS_METRICS, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return metrics


def figure_path(path: Path, name: str) -> Path:
    """``RUN/figures/<name>.png``, creating the folder."""
    folder = Path(path) / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


def figure_paths(path: Path) -> list[Path]:
    """The PNG figures of a run, by name."""
    folder = Path(path) / FIGURES
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def raw_config(path: Path) -> dict:
    """``config.json`` as the plain object it is (for display); empty if there is none or it is damaged."""
    try:
        return _read_json(Path(path) / CONFIG)
    except ValueError:
        return {}


# --- loading a run ----------------------------------------------------------------------------


@dataclass
class Run:
    """A trained run: its config, model and guide (in eval mode) and, if asked for, its data.

    Analysis talks to :attr:`representation`, not to the model's internals. The model and guide
    keep their Pyro parameters in a store of their own: use them inside :meth:`scope`, which
    swaps it in for the caller's and back.
    """

    path: Path
    config: TrainConfig
    model: torch.nn.Module
    guide: torch.nn.Module
    device: torch.device
    #: what analysis asks of the model (:mod:`pyro_ccvae.models.base`).
    representation: Representation
    data: Optional[DataSplits] = None
    _params: dict = field(default_factory=lambda: {"params": {}, "constraints": {}}, repr=False)

    @property
    def label_names(self) -> list[str]:
        return self.config.label_names

    @property
    def num_classes(self) -> list[int]:
        return self.config.num_classes

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Run the model and guide with the run's own Pyro parameter store: the caller's is put
        aside and restored on exit, untouched (Pyro's ``ParamStoreDict.scope``)."""
        with pyro.get_param_store().scope(state=self._params):
            yield


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
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory {path} does not exist; train one with `ccvae-pyro train --out {path}`")
    if not has_run(path):
        missing = CONFIG if not (path / CONFIG).exists() else CHECKPOINT
        raise RunError(f"{path} is not a complete run: {missing} is missing; train or resume it with `ccvae-pyro train`")
    config = read_config(path)
    if not config.data.info:
        raise RunError(f"{path / CONFIG} has no data.info; the run was never started")
    family = get_family(config.model.name)
    if config.guide.name not in family.builtin_guides() and not trust:
        raise RunError(
            f"{path / CONFIG} names the guide {config.guide.name!r}, and loading it imports and runs that code; "
            "pass --trust-run if you trust this run directory"
        )
    if data_dir is not None:
        config.data.data_dir = str(data_dir)
    if cache_dir is not None:
        config.data.cache_dir = str(cache_dir)
    config.data.make_paths_absolute()
    torch_device = resolve_device(device)
    model, guide = family.build_run(config)
    representation = family.representation(model, guide, config.data.info, torch_device, config.model)
    run = Run(path, config, model, guide, torch_device, representation)
    try:
        state, _ = load_state(path, map_location=torch_device, trusted=trust)
    except CheckpointError as error:
        raise RunError(str(error)) from None
    with run.scope():
        run.model.load_state_dict(state["model"])
        run.guide.load_state_dict(state["guide"])
        run.model.to(torch_device).eval()
        run.guide.to(torch_device).eval()
    if load_data:
        run.data = load_dataset(config.data.dataset, config.data.data_options(config.run.seed))
        check_data_matches(path, run.data)
    return run
