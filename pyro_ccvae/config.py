"""The training configuration: a dataclass saved as ``config.json`` in the run directory."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

from .data import DataOptions


@dataclass
class TrainConfig:
    """Everything that defines a training run; ``config.json`` round-trips it."""

    dataset: str = "shapes"
    data_dir: Optional[str] = None
    #: None: the data set's default (32 for the built-in and digit sets, 64 otherwise).
    image_size: Optional[int] = None
    labels: Optional[list[str]] = None
    uncertain: str = "ignore"
    blank: str = "zeros"
    views: str = "frontal"
    center_crop: bool = False
    cache_dir: Optional[str] = None
    skip_bad_images: bool = False
    num_train: Optional[int] = None
    #: fraction of training points whose labels are used; the rest train unsupervised.
    sup_frac: float = 1.0
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    k_samples: int = 100
    z_style_dim: int = 27
    z_char_dim: int = 1
    guide: str = "meanfield"
    jensen: str = "exact"
    detach_classifier_input: bool = True
    likelihood: str = "laplace"
    device: str = "auto"
    seed: int = 0
    #: filled in by training from the data: label names, image channels and size.
    data_info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (0.0 <= self.sup_frac <= 1.0, f"--sup-frac must be in [0, 1], got {self.sup_frac}"),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.k_samples >= 1, f"--k-samples must be at least 1, got {self.k_samples}"),
            (self.z_style_dim >= 1, f"--z-style-dim must be at least 1, got {self.z_style_dim}"),
            (self.z_char_dim >= 1, f"--z-char-dim must be at least 1, got {self.z_char_dim}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def data_options(self) -> DataOptions:
        from .data import default_image_size

        return DataOptions(
            data_dir=Path(self.data_dir) if self.data_dir else None,
            image_size=self.image_size or default_image_size(self.dataset),
            labels=tuple(self.labels) if self.labels else None,
            cache_dir=Path(self.cache_dir) if self.cache_dir else None,
            skip_bad_images=self.skip_bad_images,
            seed=self.seed,
            uncertain=self.uncertain,
            blank=self.blank,
            views=self.views,
            center_crop=self.center_crop,
            num_train=self.num_train,
        )

    def save(self, path: Path) -> None:
        from .checkpoint import atomic_write_text

        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
