"""Where analysis writes into a run directory, and how ``metrics.json`` is kept.

Every analysis command writes into the run directory it reads::

    RUN/figures/*.png   figures
    RUN/metrics.json    one section per metric family, merged across commands
    RUN/report.html     every metric and figure on one page (see :mod:`.report`)

Sections are replaced, never appended to, so a re-run of a command leaves one current answer.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..checkpoint import atomic_write_text

FIGURES_DIR = "figures"
#: the metrics.json sections computed by a judge (a classifier reading edited or generated images).
JUDGED_SECTIONS = ("single_interventions", "characteristic_swap", "generation_accuracy")
#: a judge reading a label's real test images less accurately than this makes that label's judged
#: metrics unreliable: they measure the judge as much as the model.
RELIABLE_JUDGE_ACCURACY = 0.9
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"


def figure_path(run_dir: Path, name: str) -> Path:
    """``RUN/figures/<name>.png``, creating the folder."""
    folder = Path(run_dir) / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


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


def read_metrics(run_dir: Path) -> dict:
    """The run's ``metrics.json`` (empty if there is none yet)."""
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def update_metrics(run_dir: Path, sections: dict, remove: Iterable[str] = ()) -> dict:
    """Replace ``sections`` (name -> dict) in ``RUN/metrics.json`` and drop the sections named in
    ``remove`` (a command's own sections it did not recompute: no stale answers), atomically;
    returns the whole file."""
    metrics = read_metrics(run_dir)
    for name in remove:
        metrics.pop(name, None)
    metrics.update(json_safe(sections))
    atomic_write_text(Path(run_dir) / METRICS_FILE, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return metrics


def slug(name: str) -> str:
    """A label name made safe for a file name (``"Pleural Effusion"`` -> ``"Pleural_Effusion"``)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


#: longest label part of a figure name before it is shortened with a hash.
NAME_PARTS_MAX = 60


def figure_name(kind: str, parts: Sequence[str] = ()) -> str:
    """``kind`` followed by the requested labels (``"generate_red_1_large_0"``), so that a command
    asked for other labels writes another file instead of overwriting; a long tail is cut and
    ended with a hash of the whole (still one name per request)."""
    if not parts:
        return kind
    tail = slug("__".join(parts))
    if len(tail) > NAME_PARTS_MAX:
        tail = tail[: NAME_PARTS_MAX - 9] + "_" + hashlib.sha1(tail.encode()).hexdigest()[:8]
    return f"{kind}_{tail}"
