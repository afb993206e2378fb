"""The run directory: the one contract between ``train`` and every command that reads a run.

This module owns every file name of a run directory and all their reading and writing; training
(:mod:`pyro_ccvae.training`) and analysis (:mod:`pyro_ccvae.analysis`) use it and never import
each other::

    config.json      the TrainConfig, nested by section (model, data, guide, optimisation, run),
                     with the data's label spec (names, classes per label), channels and image size in data.info
    labelled.json    indices (into the training split) of the points whose labels are used; with a
                     supervision schedule, the first stage's in the seeded permutation's order
                     (stage k labels its first round(f_k N): :func:`labelled_stages`)
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

``config.json`` loads strictly: an unknown or missing key, or a value of the wrong type, is a
one-line :class:`RunError` naming the file and the key. A flat ``config.json`` (version 0.1,
before the sections) is converted on reading. Every file is checked when it is read
(``labelled.json``: indices into the training split, each once; ``splits.json``: a list of items
per split), so a hand-edited or damaged run directory ends in one line, not a traceback.

A run directory holds its own files: one that holds a symbolic link is refused, and no file is
ever written through a link (see :mod:`pyro_ccvae.checkpoint`). A checkpoint records the
``config.json`` it was trained with, so that a checkpoint of another run (another image size,
``--z-char-dim``, label set or order, likelihood...) is refused in one line naming the setting.
The analysis commands' results (``metrics.json``) record which checkpoint (epoch, sha256) each
section and figure describes, and are read, changed and written under a lock
(``.results.lock``), so that two commands at once lose nothing.

A run directory is trusted like code only where its config names a guide by import path
(``module:attr``): loading it imports that module, so :func:`load_run` asks for ``trust=True``.
Loading a run leaves the caller's Pyro parameter store alone: the run's modules keep their
parameters in a store of their own, entered with :meth:`Run.scope` and by each call of the run's
model or guide (so that Pyro's own tools, ``Predictive`` or ``poutine.trace``, can call them).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import stat
import threading
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import pyro
import torch

from .checkpoint import (
    CheckpointError,
    DirectoryLock,
    PathError,
    append_text,
    atomic_write_text,
    check_no_links,
    check_own_directory,
    checkpoint_exists,
    file_errors,
    make_folder,
    newest_digest,
    previous_path,
    read_checkpoint,
    read_file,
    read_text,
    remove_stale_temporaries,
    save_checkpoint,
    shown,
)
from .config import SECTIONS, TrainConfig
from .data import DataSplits, load_dataset
from .devices import resolve_device
from .errors import UserError
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
#: held (flock) by an analysis command while it writes its results (figures, metrics.json, report.html).
RESULTS_LOCK = ".results.lock"
#: metrics.json's key for which checkpoint each section and figure describes (not a metric section).
PROVENANCE = "provenance"
#: a config.json larger than this is not one of ours (and is not read into memory).
CONFIG_MAX_BYTES = 1 << 20
#: ``config.json``'s ``version``: 2 is nested by section; version 0.1 wrote no version and was flat.
CONFIG_VERSION = 2


class RunError(UserError):
    """A missing, incomplete or damaged run directory; the message is one line."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


#: what to do about a damaged file that defines the run.
RESTORE = "the run directory is damaged: restore the file, or start a new run with another --out"


def _damaged(file: Path, what: str, fix: str = RESTORE) -> RunError:
    return RunError(f"{shown(file)}: {what}; {fix}")


def read_json_file(file: Path, max_bytes: Optional[int] = None, fix: str = RESTORE) -> Any:
    """The JSON value in ``file``; a one-line :class:`RunError` naming the file when it is not a
    readable regular file, not UTF-8, not valid JSON or nested too deeply.

    :raises FileNotFoundError: it does not exist (the caller says what that means).
    """
    try:
        text = read_text(file, max_bytes=max_bytes)
    except PathError as error:
        raise RunError(str(error)) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise _damaged(file, "nested more deeply than any file of a run", fix) from None
    except json.JSONDecodeError as error:
        raise _damaged(file, f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})", fix) from None


# --- config.json ----------------------------------------------------------------------------


def is_run_config(config: dict) -> bool:
    """Whether a ``config.json`` object is a training run's (not a classifier's, not a stranger's)."""
    return {"version", "model", "guide"} <= config.keys() or {"dataset", "guide", "sup_frac"} <= config.keys()


def _type_name(annotation) -> str:
    """``int`` -> ``"an integer"``, ``Optional[int]`` -> ``"an integer or null"``, ..."""
    if typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a) for a in options) + " or null"
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return {str: "a list of strings", int: "a list of integers", float: "a list of numbers"}.get(item, "a list")
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string", dict: "an object"}.get(
        annotation, f"a {getattr(annotation, '__name__', annotation)}"
    )


def _has_type(value: Any, annotation) -> bool:
    """Whether a JSON ``value`` has the type a config field is annotated with (strictly: ``true``
    is not an integer, ``"3"`` is not a number, ``NaN`` is not a finite number)."""
    if annotation is Any:
        return True
    if typing.get_origin(annotation) is typing.Union:
        return any(value is None if a is type(None) else _has_type(value, a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation in (str, dict):
        return isinstance(value, annotation)
    return True  # a type this check does not know: the dataclass decides


def _shown_value(value: Any) -> str:
    """A JSON value for a one-line message, cut to 40 characters."""
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _live_choices(name: str) -> Optional[tuple]:
    """The choices of a field whose choices come from a registry that may have grown since the
    config classes were defined (a data set or likelihood registered by a user or a test)."""
    if name == "dataset":
        from .data import DATASETS

        return tuple(DATASETS)
    if name == "likelihood":
        from .likelihoods import LIKELIHOODS

        return tuple(LIKELIHOODS)
    return None


def _check_fields(where: str, given: dict, kind: type) -> None:
    """A ``ValueError`` naming ``where.key`` for the first value of ``given`` whose type is not its
    field's, or that is not among the field's choices."""
    types = typing.get_type_hints(kind)
    for f in fields(kind):
        if f.name not in given:
            continue
        value, annotation = given[f.name], types[f.name]
        key = f"{where}.{f.name}" if where else f.name  # a flat version 0.1 config has no sections
        if not _has_type(value, annotation):
            raise ValueError(f"{key} must be {_type_name(annotation)}, not {_shown_value(value)}")
        choices = _live_choices(f.name) or f.metadata.get("choices")
        if value is not None and isinstance(choices, (tuple, list, frozenset, set)) and value not in choices:
            raise ValueError(f"{key} is {_shown_value(value)}, not one of {', '.join(map(str, choices))}")


#: keys of ``data.info`` that every started run has, and their checks.
_INFO_REQUIRED = ("label_names", "channels", "image_size")


def _check_info(info: dict, where: str = "data.info") -> None:
    """A ``ValueError`` naming the key of a ``data.info`` that no data set could have produced
    (empty: the run was never started, which :func:`load_run` says)."""
    if not info:
        return
    for key in _INFO_REQUIRED:
        if key not in info:
            raise ValueError(f"missing key {where}.{key}")
    names = info["label_names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise ValueError(f"{where}.label_names must be a non-empty list of label names, not {_shown_value(names)}")
    if len(set(names)) != len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{where}.label_names names {repeated!r} twice")
    classes = info.get("num_classes")
    if classes is not None:
        if not (isinstance(classes, list) and all(_has_type(k, int) and k >= 2 for k in classes)):
            raise ValueError(f"{where}.num_classes must be a list of class counts of at least 2, not {_shown_value(classes)}")
        if len(classes) != len(names):
            raise ValueError(f"{where}.num_classes has {len(classes)} entries for {len(names)} labels in {where}.label_names")
    if info["channels"] not in (1, 3) or isinstance(info["channels"], bool):
        raise ValueError(f"{where}.channels must be 1 or 3, not {_shown_value(info['channels'])}")
    if info["image_size"] not in (32, 64) or isinstance(info["image_size"], bool):
        raise ValueError(f"{where}.image_size must be 32 or 64, not {_shown_value(info['image_size'])}")
    if "num_train" in info and not (_has_type(info["num_train"], int) and info["num_train"] >= 0):
        raise ValueError(f"{where}.num_train must be a count of images, not {_shown_value(info['num_train'])}")


def _check_guide_options(options: dict, where: str = "guide.options") -> None:
    for name, value in options.items():
        if not (value is None or isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value))):
            raise ValueError(f"{where}.{name} must be a number, string, true, false or null, not {_shown_value(value)}")


def check_config_object(raw: dict) -> None:
    """Check the types of a nested ``config.json`` object (without its version) against the
    config's fields, so that a hand-edited value is named (``model.z_char_dim must be an integer,
    not "x"``) instead of failing somewhere inside; :meth:`TrainConfig.from_dict` then checks the
    keys and each section its values' ranges."""
    for section in SECTIONS:
        if section in raw and not isinstance(raw[section], dict):
            raise ValueError(f"section {section!r} must be an object, not {type(raw[section]).__name__ if raw[section] is not None else 'null'}")
    if not isinstance(raw.get("model"), dict):
        return  # from_dict says the section is missing
    model = raw["model"].get("name")
    if not isinstance(model, str):
        raise ValueError(f"model.name must be a string, not {_shown_value(model)}")
    try:
        classes = TrainConfig.section_classes(model)
    except ValueError:
        return  # an unknown model: from_dict names it
    for section, kind in classes.items():
        if isinstance(raw.get(section), dict):
            _check_fields(section, raw[section], kind)
    data = raw.get("data", {})
    if isinstance(data.get("info"), dict):
        _check_info(data["info"])
    guide = raw.get("guide", {})
    if isinstance(guide.get("options"), dict):
        _check_guide_options(guide["options"])


def _check_legacy_object(raw: dict) -> None:
    """The type checks of :func:`check_config_object` for a flat version 0.1 config."""
    classes = TrainConfig.section_classes("ccvae")
    for section, kind in classes.items():
        names = {f.name for f in fields(kind)} - {"name"}
        _check_fields("", {k: raw[k] for k in names if k in raw}, kind)
    if isinstance(raw.get("data_info"), dict):
        _check_info(raw["data_info"], "data_info")


def config_from_json(raw: Any) -> TrainConfig:
    """The config of a ``config.json`` object, nested or (version 0.1) flat; ``ValueError`` names
    the first key that is unknown, missing or of the wrong type."""
    if not isinstance(raw, dict):
        raise ValueError(f"it is not a JSON object but {type(raw).__name__ if raw is not None else 'null'}")
    try:
        if "version" not in raw:
            _check_legacy_object(raw)
            return TrainConfig.from_legacy(raw)
        if raw["version"] != CONFIG_VERSION:
            raise ValueError(f"version {_shown_value(raw['version'])} is not one this pyro-ccvae reads ({CONFIG_VERSION}); use the version that wrote it")
        nested = {k: v for k, v in raw.items() if k != "version"}
        check_config_object(nested)
        return TrainConfig.from_dict(nested)
    except ValueError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError) as error:  # a check above missed a shape: still one line
        raise ValueError(f"{type(error).__name__}: {_one_line(error)}") from None


def read_config(path: Path) -> TrainConfig:
    """The config of the run in ``path``; a one-line :class:`RunError` when it cannot be read."""
    file = Path(path) / CONFIG
    try:
        raw = read_json_file(file, max_bytes=CONFIG_MAX_BYTES)
    except FileNotFoundError:
        raise RunError(f"{shown(Path(path))} holds no {CONFIG}; it is not a run directory (or its {CONFIG} was removed)") from None
    try:
        return config_from_json(raw)
    except ValueError as error:
        raise RunError(f"{shown(file)} cannot be read ({_one_line(error)}); the run directory is damaged") from None


def _non_finite(value: Any, where: str = "") -> Optional[tuple[str, float]]:
    """The key and value of the first NaN or infinite number in a nested config object."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def write_config(path: Path, config: TrainConfig) -> None:
    """Write ``config.json``; a setting that is NaN or infinite is a one-line :class:`RunError`
    (strict JSON has no such numbers, and no option means anything with them)."""
    raw = config.to_dict()
    bad = _non_finite(raw)
    if bad is not None:
        key, value = bad
        flag = "--" + key.rsplit(".", 1)[-1].replace("_", "-")
        raise RunError(f"{key} is {value}: every setting must be a finite number; give {flag} a finite value")
    atomic_write_text(Path(path) / CONFIG, json.dumps({"version": CONFIG_VERSION, **raw}, indent=2, allow_nan=False) + "\n")


# --- the writer, and what training writes once ------------------------------------------------


def check_links(path: Path) -> None:
    """Refuse a run directory that holds a symbolic link (see :func:`~pyro_ccvae.checkpoint.check_no_links`)."""
    try:
        check_no_links(path, "run directory")
    except PathError as error:
        raise RunError(str(error)) from None


def check_run_directory(path: Path) -> None:
    """Refuse a non-empty ``path`` that is not a run directory (``--out`` never overwrites a
    user's files), and a run directory that holds a symbolic link."""
    if os.path.lexists(Path(path) / CONFIG):  # a damaged config.json is named as such, not as a stranger's file
        value = read_json_file(Path(path) / CONFIG, max_bytes=CONFIG_MAX_BYTES)
        if has_checkpoint(path) and not (isinstance(value, dict) and is_run_config(value)):
            read_config(path)  # beside a checkpoint it is a run's: say what is wrong with it
    check_own_directory(path, CONFIG, is_run_config, "pyro-ccvae training run", ignore=(LOCK, RESULTS_LOCK))
    if os.path.isdir(path):
        check_links(path)


def lock_run(path: Path) -> DirectoryLock:
    """The writer's lock on the run in ``path`` (which must exist); a :class:`RunError` if another process holds it."""
    lock = DirectoryLock(path, LOCK)
    if not lock.acquire():
        holder = lock.holder()
        raise RunError(
            f"{shown(Path(path))} is in use by another training process{f' ({holder})' if holder else ''}; "
            "wait for it to finish or stop it, or choose another --out"
        )
    for name in (CHECKPOINT, previous_path(Path(CHECKPOINT)).name, CHECKPOINT + ".sha256.json", CONFIG, LABELLED, SPLITS, METRICS, SUMMARY):
        remove_stale_temporaries(path, name)
    return lock


#: the results locks this process holds, by folder: an analysis command holds its run's while it
#: writes, and the writing functions it calls take it again (flock would wait for itself).
_held_results: dict[str, list] = {}
_held_results_guard = threading.Lock()


@contextmanager
def results_lock(path: Path) -> Iterator[None]:
    """Hold the run's results lock (``RUN/.results.lock``) while writing figures, ``metrics.json``
    and ``report.html``, so that two analysis commands on one run do not mix or lose results: the
    second waits (saying so) until the first is done. Re-entrant within a process."""
    key = os.path.realpath(path)
    with _held_results_guard:
        held = _held_results.get(key)
        if held is not None:
            held[1] += 1
    if held is None:
        lock = DirectoryLock(path, RESULTS_LOCK)
        if not lock.acquire():
            log.warning("%s: waiting for another analysis command that is writing its results there", shown(Path(path)))
            lock.acquire(wait=True)
        with _held_results_guard:
            held = _held_results[key] = [lock, 1]
    try:
        yield
    finally:
        with _held_results_guard:
            held[1] -= 1
            if held[1] == 0:
                del _held_results[key]
                held[0].release()


def has_run(path: Path) -> bool:
    """Whether ``path`` holds a config and a checkpoint (a run that can be resumed or read)."""
    return os.path.lexists(Path(path) / CONFIG) and has_checkpoint(path)


def has_checkpoint(path: Path) -> bool:
    """Whether ``path`` holds a checkpoint (or its previous copy), good or not."""
    return checkpoint_exists(Path(path) / CHECKPOINT)


def labelled_count(num_train: int, sup_frac: float) -> int:
    """How many of ``num_train`` training points ``--sup-frac`` labels (rounded to the nearest)."""
    return int(round(sup_frac * num_train))


def write_labelled(path: Path, labelled: torch.Tensor) -> None:
    atomic_write_text(Path(path) / LABELLED, json.dumps(labelled.tolist()) + "\n")


def check_labelled(file: Path, value: Any, num_train: Optional[int] = None, sup_frac: Optional[float] = None) -> list[int]:
    """The indices of a ``labelled.json`` value; a one-line :class:`RunError` naming the file and
    the entry when it is not a list of distinct indices into the training split of ``num_train``
    points, or (with ``sup_frac``) not as many as ``--sup-frac`` labels."""
    if not isinstance(value, list):
        raise _damaged(file, f"it must be a list of indices into the training split, not {_shown_value(value)}")
    seen: dict[int, int] = {}
    for position, index in enumerate(value):
        if not _has_type(index, int):
            raise _damaged(file, f"entry {position} is {_shown_value(index)}, not an index (a whole number)")
        if index < 0:
            raise _damaged(file, f"entry {position} is {index}, a negative index")
        if num_train is not None and index >= num_train:
            raise _damaged(file, f"entry {position} is {index}, beyond the training split's {num_train} points (0 to {num_train - 1})")
        if index in seen:
            raise _damaged(file, f"entry {position} repeats index {index} (entry {seen[index]})")
        seen[index] = position
    if num_train is not None and sup_frac is not None and len(value) != labelled_count(num_train, sup_frac):
        expected = labelled_count(num_train, sup_frac)
        raise _damaged(
            file, f"it holds {len(value)} indices, but optimisation.sup_frac {sup_frac} of {num_train} training points labels {expected}"
        )
    return value


def read_labelled(path: Path, num_train: Optional[int] = None, sup_frac: Optional[float] = None) -> torch.Tensor:
    """The run's labelled subset, checked (see :func:`check_labelled`)."""
    file = Path(path) / LABELLED
    try:
        value = read_json_file(file)
    except FileNotFoundError:
        raise RunError(f"{shown(file)} is missing; the run directory is damaged: restore the file, or start a new run with another --out") from None
    return torch.tensor(check_labelled(file, value, num_train, sup_frac), dtype=torch.long)


def labelled_stages(path: Path, config: TrainConfig) -> list[torch.Tensor]:
    """Each supervision stage's labelled subset (sorted indices) of the run in ``path``: one, the
    ``--sup-frac`` subset, for a run without a schedule; checked like :func:`read_labelled`."""
    from .supervision import nested_subsets, stage_counts

    optimisation, num_train = config.optimisation, config.data.info.get("num_train")
    order = read_labelled(path, num_train, optimisation.sup_frac)
    stages = optimisation.stages()
    if stages is None or num_train is None:  # without num_train in data.info: a run from before schedules
        return [order.sort().values]
    return nested_subsets(order, stage_counts(stages, num_train))


def write_splits(path: Path, data: DataSplits) -> None:
    atomic_write_text(Path(path) / SPLITS, json.dumps(data.manifest()) + "\n")


SPLIT_NAMES = ("train", "valid", "test")


def read_splits(path: Path) -> Optional[dict]:
    """The run's ``splits.json`` (``None`` for a run from before splits were recorded), checked: an
    object with a list of item names (or numbers) per split."""
    file = Path(path) / SPLITS
    try:
        saved = read_json_file(file)
    except FileNotFoundError:
        return None
    if not isinstance(saved, dict):
        raise _damaged(file, f"it must be an object with the lists {', '.join(SPLIT_NAMES)}, not {_shown_value(saved)}")
    for split in SPLIT_NAMES:
        if split not in saved:
            raise _damaged(file, f"it has no list {split!r}")
        items = saved[split]
        if not isinstance(items, list):
            raise _damaged(file, f"{split} must be a list of the split's items, not {_shown_value(items)}")
        bad = next((i for i, item in enumerate(items) if not (isinstance(item, str) or _has_type(item, int))), None)
        if bad is not None:
            raise _damaged(file, f"{split}[{bad}] is {_shown_value(items[bad])}, not an item's name or number")
    return saved


def check_data_matches(path: Path, data: DataSplits) -> None:
    """A :class:`RunError` unless ``data`` has the splits recorded in the run's ``splits.json``."""
    saved = read_splits(path)
    if saved is None:
        return  # a run from before splits were recorded
    now = data.manifest()
    for split in SPLIT_NAMES:
        before, after = saved[split], now[split]
        if before != after:
            changed = next((b for b, a in zip(before, after) if b != a), None)
            detail = f"first difference at {changed!r}" if changed is not None else "a different number of images"
            raise RunError(
                f"the data no longer matches {shown(Path(path) / SPLITS)}: the {split} split has {len(after)} images, "
                f"the run {len(before)} ({detail}); pass --data-dir (and --cache-dir) with the data the run was trained on"
            )


# --- metrics.jsonl ----------------------------------------------------------------------------


def clear_epoch_metrics(path: Path) -> None:
    with file_errors(Path(path) / METRICS, "remove"):
        (Path(path) / METRICS).unlink(missing_ok=True)


def tensorboard_dir(path: Path) -> Path:
    """``RUN/tensorboard``, where ``--tensorboard`` writes its event files."""
    return Path(path) / TENSORBOARD


def clear_tensorboard(path: Path) -> None:
    """Remove the event files of an earlier start of this run (a new run starts from step 0)."""
    folder = tensorboard_dir(path)
    if folder.is_symlink():  # rmtree refuses a link; it is removed, never followed
        folder.unlink()
    shutil.rmtree(folder, ignore_errors=True)


def append_epoch_metrics(path: Path, record: dict) -> None:
    append_text(Path(path) / METRICS, json.dumps(record) + "\n")


def trim_epoch_metrics(path: Path, last_epoch: int) -> None:
    """Keep the metric lines up to ``last_epoch`` (a crash can come between a checkpoint and its
    line), and drop lines that a kill left partial, blank or NUL-filled."""
    file = Path(path) / METRICS
    try:
        data = read_file(file)
    except FileNotFoundError:
        return
    except PathError as error:
        raise RunError(str(error)) from None
    kept, damaged = [], []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            epoch = json.loads(line)["epoch"]
            if not _has_type(epoch, int):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):
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


def save_state(path: Path, state: dict, hint: str) -> str:
    """Save a checkpoint ``state`` into the run (see :func:`pyro_ccvae.checkpoint.save_checkpoint`),
    with the run's ``config.json`` recorded in it (``state["config"]``) so that it cannot later be
    read as another configuration's; returns its sha256."""
    try:
        config = read_json_file(Path(path) / CONFIG, max_bytes=CONFIG_MAX_BYTES)
    except (FileNotFoundError, RunError):
        config = None
    if isinstance(config, dict):
        state = {**state, "config": config}
    return save_checkpoint(state, Path(path) / CHECKPOINT, hint=hint)


@dataclass
class CheckpointUsed:
    """Which checkpoint a result describes: recorded beside the result and compared by the report."""

    file: str
    epoch: Optional[int]
    batch: Optional[int]
    sha256: str

    def as_dict(self) -> dict:
        return {"file": self.file, "epoch": self.epoch, "batch": self.batch, "sha256": self.sha256}


def load_state(path: Path, map_location=None, trusted: bool = False) -> tuple[dict, Optional[Path]]:
    """The run's newest good checkpoint: ``(state, the previous copy's path if that is what was read)``.
    ``trusted``: see :func:`pyro_ccvae.checkpoint.load_checkpoint`.

    :raises CheckpointError: there is none.
    """
    loaded = read_checkpoint(Path(path) / CHECKPOINT, map_location=map_location, trusted=trusted)
    return loaded.state, loaded.file if loaded.file == previous_path(Path(path) / CHECKPOINT) else None


def _checkpoint_used(loaded) -> CheckpointUsed:
    position = loaded.state.get("position") if isinstance(loaded.state.get("position"), dict) else {}
    return CheckpointUsed(loaded.file.name, position.get("epoch"), position.get("batch"), loaded.sha256)


def _resumable(kind: type) -> set[str]:
    """The fields of a config section that a resumed run may change (``--epochs``, ``--device``, ...)."""
    return {f.name for f in fields(kind) if f.metadata.get("resume")}


#: the keys of ``data.info`` that describe the model's shapes and labels.
_INFO_COMPARED = ("label_names", "num_classes", "channels", "image_size")
#: the settings outside the model section that say what a checkpoint's parameters mean. The
#: optimisation, run and execution sections and the other data options say how it was trained.
_DATA_COMPARED = ("dataset", "labels")


def config_difference(recorded: dict, config: TrainConfig) -> Optional[tuple[str, Any, Any]]:
    """The first setting that defines the model (its family and settings, the data set, the label
    set and order, image channels and size, the guide) in which the ``config.json`` object a
    checkpoint recorded differs from ``config``, as ``(key, recorded value, config's value)``.

    A guide given by import path may have moved (``mypkg.guides:G`` -> ``ours.guides:G``): its
    name is left to the parameters' shapes and keys (:func:`check_state_fits`)."""
    current = config.to_dict()
    compared: list[tuple[str, Any, Any]] = []
    old_model, new_model = recorded.get("model"), current["model"]
    if isinstance(old_model, dict):
        free = _resumable(TrainConfig.section_classes(config.model.name)["model"])
        compared += [(f"model.{k}", old_model[k], v) for k, v in new_model.items() if k in old_model and k not in free]
        compared.sort(key=lambda item: item[0] != "model.name")  # a family of its own says the most
    old_data, new_data = recorded.get("data"), current["data"]
    if isinstance(old_data, dict):
        compared += [(f"data.{k}", old_data[k], new_data[k]) for k in _DATA_COMPARED if k in old_data]
        old_info, new_info = old_data.get("info"), new_data["info"]
        if isinstance(old_info, dict):
            compared += [(f"data.info.{k}", old_info[k], new_info[k]) for k in _INFO_COMPARED if k in old_info and k in new_info]
    old_guide, new_guide = recorded.get("guide"), current["guide"]
    if isinstance(old_guide, dict):
        names = (old_guide.get("name"), new_guide["name"])
        if all(isinstance(n, str) and ":" not in n for n in names):
            compared.append(("guide.name", *names))
        if "options" in old_guide:
            compared.append(("guide.options", old_guide["options"], new_guide["options"]))
    return next(((key, old, new) for key, old, new in compared if old != new), None)


def _shape_mismatch(saved: Any, module: torch.nn.Module, prefix: str) -> Optional[str]:
    """What keeps ``module.load_state_dict(saved)`` from working, in words; ``None`` if nothing."""
    if not isinstance(saved, dict):
        return f"it holds no {prefix} parameters"
    wanted = module.state_dict()
    for key, tensor in wanted.items():
        if key not in saved:
            return f"it lacks {prefix}.{key}"
        value = saved[key]
        if not isinstance(value, torch.Tensor):
            return f"{prefix}.{key} is not a tensor"
        if value.shape != tensor.shape:
            return f"{prefix}.{key} has shape {list(value.shape)} there and {list(tensor.shape)} in the model"
    extra = sorted(set(saved) - set(wanted))
    if extra:
        return f"it has {prefix}.{extra[0]}, which the model has not"
    return None


def _shape_settings(config: TrainConfig) -> list[tuple[str, list]]:
    """Settings that change the networks' shapes and their values, tried one at a time to name
    the one that differs for a checkpoint that records no config (written before checkpoints did)."""
    from .likelihoods import LIKELIHOODS

    model_fields = {f.name for f in fields(type(config.model))}
    settings: list[tuple[str, list]] = [("data.info.image_size", [32, 64]), ("data.info.channels", [1, 3])]
    for name, values in (("z_char_dim", range(1, 9)), ("z_style_dim", [*range(1, 17), 32, 64]), ("z_dim", [*range(1, 17), 32, 64])):
        if name in model_fields:
            settings.append((f"model.{name}", list(values)))
    if "likelihood" in model_fields:
        settings.append(("model.likelihood", list(LIKELIHOODS)))
    settings.append(("data.info.label_names", [[f"label_{i}" for i in range(n)] for n in range(1, 41)]))
    return settings


def _with_setting(config: TrainConfig, key: str, value: Any) -> TrainConfig:
    import copy

    variant = copy.deepcopy(config)
    section, name = key.split(".", 1)
    if section == "data" and name.startswith("info."):
        variant.data.info[name.split(".", 1)[1]] = value
        if name == "info.label_names":
            variant.data.info["num_classes"] = [2] * len(value)
    else:
        setattr(getattr(variant, section), name, value)
    return variant


def _guess_setting(config: TrainConfig, state: dict) -> Optional[str]:
    """The one setting whose change makes the checkpoint's shapes fit, as ``"key value"``; ``None``
    when no single one does. Builds a model per candidate: only on the way to an error."""
    family = get_family(config.model.name)
    for key, values in _shape_settings(config):
        for value in values:
            try:
                variant = _with_setting(config, key, value)
                model, guide = family.build_run(variant)
            except Exception:  # a combination the family refuses: not the answer
                continue
            if _shape_mismatch(state.get("model"), model, "model") is None and _shape_mismatch(state.get("guide"), guide, "guide") is None:
                shown_value = len(value) if key == "data.info.label_names" else value
                return f"{'the number of labels' if key == 'data.info.label_names' else key} {shown_value}"
    return None


def check_state_fits(path: Path, state: dict, config: TrainConfig, file: str = CHECKPOINT, **modules: torch.nn.Module) -> None:
    """A one-line :class:`RunError` unless the checkpoint ``state`` (read from ``RUN/file``) is one
    of the run that ``config`` describes and fits ``modules`` (``model=..., guide=...``): it names
    the setting that differs (``checkpoint.pt was trained with model.z_char_dim 4 but config.json
    says 1``) and what to do."""
    path = Path(path)
    fix = f"the checkpoint comes from another run: put back the {CONFIG} of the run that wrote it, or this run's {CHECKPOINT}"
    recorded = state.get("config")
    if isinstance(recorded, dict):
        difference = config_difference(recorded, config)
        if difference is not None:
            key, old, new = difference
            raise RunError(
                f"{shown(path / file)} was trained with {key} {_shown_value(old)} but {CONFIG} says {_shown_value(new)}; {fix}"
            )
    for name, module in modules.items():
        problem = _shape_mismatch(state.get(name), module, name)
        if problem is not None:
            guess = _guess_setting(config, state)
            said = f"it was trained with {guess}, which {CONFIG} does not say" if guess else (
                "it was trained with another image size, channel count, --z-char-dim, --z-style-dim, label set or likelihood"
            )  # fmt: skip
            raise RunError(f"{shown(path / file)} does not fit the model {CONFIG} describes ({problem}): {said}; {fix}")


def load_modules(path: Path, state: dict, config: TrainConfig, file: str = CHECKPOINT, **modules: torch.nn.Module) -> None:
    """:func:`check_state_fits`, then load each module's parameters from ``state``."""
    check_state_fits(path, state, config, file, **modules)
    for name, module in modules.items():
        module.load_state_dict(state[name])


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


def write_summary(path: Path, summary: dict) -> None:
    """Write ``summary.json``, with the checkpoint it describes (the one written last) under ``checkpoint``."""
    digest = newest_digest(Path(path) / CHECKPOINT)
    if digest is not None and "checkpoint" not in summary:
        summary = {**summary, "checkpoint": {"file": CHECKPOINT, "epoch": summary.get("epochs"), "sha256": digest}}
    atomic_write_text(Path(path) / SUMMARY, json.dumps(summary, indent=2, allow_nan=False) + "\n")


def read_summary(path: Path) -> dict:
    """The ``summary.json`` of a run (or of a classifier's directory); empty if there is none. A
    damaged one is empty too, with a warning naming it: it is only read for display and for a
    judge's accuracy (unknown accuracy marks a judge's labels unreliable)."""
    file = Path(path) / SUMMARY
    try:
        summary = read_json_file(file)
    except FileNotFoundError:
        return {}
    except RunError as error:
        log.warning("ignoring %s", error)
        return {}
    if not isinstance(summary, dict):
        log.warning("ignoring %s: it is not a JSON object", file)
        return {}
    return summary


def read_metrics(path: Path) -> dict:
    """The run's ``metrics.json`` (empty if there is none yet); a one-line :class:`RunError` when
    it is damaged (writing over it would lose its sections silently)."""
    file = Path(path) / ANALYSIS_METRICS
    fix = "move it away (the analysis commands then start a new one) and run again"
    try:
        metrics = read_json_file(file, fix=fix)
    except FileNotFoundError:
        return {}
    if not isinstance(metrics, dict):
        raise _damaged(file, "it is not a JSON object", fix)
    return metrics


def update_metrics(
    path: Path, sections: dict, remove: Iterable[str] = (), checkpoint: Optional[CheckpointUsed] = None,
    figures: Sequence[Path] = (),
) -> dict:  # fmt: skip
    """Replace ``sections`` (name -> dict) in ``RUN/metrics.json`` and drop the sections named in
    ``remove`` (a command's own sections it did not recompute: no stale answers), atomically and
    under the results lock (two commands at once lose neither's sections); returns the whole file.

    :param checkpoint: the checkpoint these sections and ``figures`` describe: recorded under
        ``metrics.json["provenance"]`` (``sections`` and ``figures`` by name, and ``checkpoint``:
        the one the latest command read), where the report finds what describes another one.
    """
    with results_lock(path):
        metrics = read_metrics(path)
        provenance = metrics.pop(PROVENANCE, None)
        provenance = provenance if isinstance(provenance, dict) else {}
        described = {k: provenance.get(k) if isinstance(provenance.get(k), dict) else {} for k in ("sections", "figures")}
        for name in remove:
            metrics.pop(name, None)
            described["sections"].pop(name, None)
        metrics.update(json_safe(sections))
        if checkpoint is not None:
            for name in sections:
                described["sections"][name] = checkpoint.as_dict()
            for figure in figures:
                described["figures"][Path(figure).name] = checkpoint.as_dict()
            provenance["checkpoint"] = checkpoint.as_dict()
        if provenance or checkpoint is not None:
            metrics[PROVENANCE] = {**provenance, **described}
        atomic_write_text(Path(path) / ANALYSIS_METRICS, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return metrics


def check_results(path: Path) -> None:
    """Check, before a command works, that it can write its results: a damaged ``metrics.json``,
    a file where ``figures/`` belongs or a folder where ``report.html`` belongs is said now, in one
    line, not after minutes of work (and without a figure written beside the fault). Called under
    :func:`results_lock`; removes the temporary files of results that a killed command left."""
    read_metrics(path)
    figures = figures_folder(path)
    # Under the results lock no one else writes these: a temporary file there is a killed command's.
    remove_stale_temporaries(path, ANALYSIS_METRICS)
    remove_stale_temporaries(path, REPORT)
    for stale in figures.glob(".*.png.*.tmp"):
        stale.unlink(missing_ok=True)
    report = Path(path) / REPORT
    if report.is_dir() and not report.is_symlink():
        raise RunError(f"{shown(report)} is a folder where a file belongs; move it away (or remove it) and run again")


def figures_folder(path: Path) -> Path:
    """``RUN/figures``, created if needed; a one-line error when a file or a link stands there."""
    return make_folder(Path(path) / FIGURES)


def figure_path(path: Path, name: str) -> Path:
    """``RUN/figures/<name>.png``, creating the folder."""
    return figures_folder(path) / f"{name}.png"


def figure_paths(path: Path) -> list[Path]:
    """The PNG figures of a run, by name (regular files only: a link is no figure of the run's)."""
    folder = Path(path) / FIGURES
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.png") if p.is_file() and not p.is_symlink())


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
    #: the checkpoint the model and guide were read from (results record it).
    checkpoint: Optional[CheckpointUsed] = None
    _params: dict = field(default_factory=lambda: {"params": {}, "constraints": {}}, repr=False)

    @property
    def label_names(self) -> list[str]:
        return self.config.label_names

    @property
    def num_classes(self) -> list[int]:
        return self.config.num_classes

    def __post_init__(self) -> None:
        for module in (self.model, self.guide):
            RunParams(self._params).attach(module)

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Run the model and guide with the run's own Pyro parameter store: the caller's is put
        aside and restored on exit, untouched (Pyro's ``ParamStoreDict.scope``). A call of
        :attr:`model` or :attr:`guide` enters it by itself (:class:`RunParams`); the scope is for
        several calls at once and for their submodules."""
        with pyro.get_param_store().scope(state=self._params):
            yield


class RunParams:
    """Torch forward hooks that run each call of a loaded run's model or guide with the run's
    Pyro parameter store ``state``, so that Pyro code calling them (``Predictive``,
    ``poutine.trace``, ``SVI``) outside :meth:`Run.scope` uses the run's parameters and leaves
    the caller's store as it was (a PyroModule registers its parameters in the global store when
    called). A hook object, not a closure: the module stays picklable."""

    def __init__(self, state: dict):
        self.state = state
        self.entered: list = []

    def attach(self, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(self.enter)
        module.register_forward_hook(self.exit, always_call=True)  # also when the call fails

    def enter(self, module, args) -> None:
        scope = pyro.get_param_store().scope(state=self.state)
        scope.__enter__()
        self.entered.append(scope)

    def exit(self, module, args, output) -> None:
        self.entered.pop().__exit__(None, None, None)


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
    with file_errors(path, "read"):  # a name too long for the file system is said as such
        try:
            is_folder = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            raise RunError(f"run directory {shown(path)} does not exist; train one with `ccvae-pyro train --out {shown(path)}`") from None
    if not is_folder:
        raise RunError(f"{shown(path)} is a file, not a run directory; give the folder `ccvae-pyro train --out` wrote")
    check_links(path)
    if not has_run(path):
        missing = CONFIG if not os.path.lexists(path / CONFIG) else CHECKPOINT
        raise RunError(f"{shown(path)} is not a complete run: {missing} is missing; train or resume it with `ccvae-pyro train`")
    config = read_config(path)
    if not config.data.info:
        raise RunError(f"{shown(path / CONFIG)} has no data.info; the run was never started")
    family = get_family(config.model.name)
    if config.guide.name not in family.builtin_guides() and not trust:
        raise RunError(
            f"{shown(path / CONFIG)} names the guide {config.guide.name!r}, and loading it imports and runs that code; "
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
        loaded = read_checkpoint(path / CHECKPOINT, map_location=torch_device, trusted=trust)
    except CheckpointError as error:
        raise RunError(str(error)) from None
    run.checkpoint = _checkpoint_used(loaded)
    with run.scope():
        load_modules(path, loaded.state, config, loaded.file.name, model=run.model, guide=run.guide)
        run.model.to(torch_device).eval()
        run.guide.to(torch_device).eval()
    if load_data:
        run.data = load_dataset(config.data.dataset, config.data.data_options(config.run.seed))
        check_data_matches(path, run.data)
    return run
