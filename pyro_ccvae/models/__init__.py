"""Building a run's model and guide from its config."""
from __future__ import annotations

import torch

from ..config import TrainConfig
from ..guides import build_guide
from ..model import CCVAEModel


def build_model_and_guide(config: TrainConfig) -> tuple[CCVAEModel, torch.nn.Module]:
    """The model and guide a config describes (``config.data.info`` must be filled)."""
    info, model_config = config.data.info, config.model
    dims = dict(
        num_labels=len(info["label_names"]),
        z_char_dim=model_config.z_char_dim,
        z_style_dim=model_config.z_style_dim,
        channels=info["channels"],
        image_size=info["image_size"],
    )
    model = CCVAEModel(
        dims["num_labels"], dims["channels"], dims["image_size"], model_config.z_style_dim, model_config.z_char_dim,
        model_config.likelihood,
    )  # fmt: skip
    return model, build_guide(config.guide.name, **dims)
