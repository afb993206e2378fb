"""Reading a run directory written by training: the interface for every analysis command."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyro
import torch

from .config import TrainConfig
from .data import DataSplits, load_dataset
from .model import CCVAEModel


class RunError(ValueError):
    """A missing or incomplete run directory; the message is one line."""


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


def load_run(path: Path, device: str = "cpu", load_data: bool = True) -> Run:
    """Load the model and guide of the run in ``path`` (and its data splits, by default)."""
    from .training import CHECKPOINT, CONFIG, build_model_and_guide, resolve_device

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory {path} does not exist; train one with `ccvae-pyro train --out {path}`")
    for name in (CONFIG, CHECKPOINT):
        if not (path / name).exists():
            raise RunError(f"{path} is not a complete run: {name} is missing; train or resume it with `ccvae-pyro train`")
    config = TrainConfig.load(path / CONFIG)
    if not config.data_info:
        raise RunError(f"{path / CONFIG} has no data_info; the run was never started")
    torch_device = resolve_device(device)
    pyro.clear_param_store()
    model, guide = build_model_and_guide(config)
    state = torch.load(path / CHECKPOINT, map_location=torch_device, weights_only=False)
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    model.to(torch_device).eval()
    guide.to(torch_device).eval()
    data = load_dataset(config.dataset, config.data_options()) if load_data else None
    return Run(path, config, model, guide, torch_device, data)
