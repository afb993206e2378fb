"""Configurations: dataclasses saved as ``config.json`` next to what they produced."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar, Optional

from .checkpoint import atomic_write_text
from .data import DataOptions, default_image_size


@dataclass
class DataConfig:
    """Which data to load, and how; shared by every command that trains on a data set."""

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
    seed: int = 0
    device: str = "auto"
    #: filled in from the loaded data: label names, image channels and size.
    data_info: dict = field(default_factory=dict)

    def data_options(self) -> DataOptions:
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

    def make_paths_absolute(self) -> None:
        """Store ``data_dir`` and ``cache_dir`` as absolute paths, so that a saved config does not
        depend on the folder a command ran in."""
        for name in ("data_dir", "cache_dir"):
            value = getattr(self, name)
            if value:
                setattr(self, name, str(Path(value).expanduser().absolute()))

    def data_config(self) -> dict:
        """The :class:`DataConfig` fields of this config, to build another on the same data."""
        return {f.name: getattr(self, f.name) for f in fields(DataConfig)}

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    #: values for fields that configs written before those fields existed lack (see :meth:`load`).
    LEGACY_DEFAULTS: ClassVar[dict] = {}

    @classmethod
    def load(cls, path: Path):
        """The config saved in ``path``; unknown keys are ignored, and a field it lacks takes its
        :data:`LEGACY_DEFAULTS` value (what such a config meant), else its default."""
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{**cls.LEGACY_DEFAULTS, **{k: v for k, v in raw.items() if k in known}})


def check_positive(config, *names: str) -> None:
    """A one-line error for the first option among ``names`` that is not positive."""
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")


@dataclass
class TrainConfig(DataConfig):
    """Everything that defines a CCVAE training run; ``config.json`` round-trips it."""

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
    #: None: the data set's default (:data:`pyro_ccvae.likelihoods.DEFAULT_LIKELIHOODS`).
    likelihood: Optional[str] = None
    #: see :class:`pyro_ccvae.elbo.CCVAE_ELBO`; the paper's objective is ``False`` and ``1.0``.
    detach_weight_denominator: bool = True
    classifier_weight: float = 1000.0
    #: the conditional prior and a learned likelihood scale learn at ``lr * prior_lr_factor`` (the paper: 1).
    prior_lr_factor: float = 10.0

    #: what runs written before these options existed (version 0.1) trained with: the paper's objective.
    LEGACY_DEFAULTS: ClassVar[dict] = {"detach_weight_denominator": False, "classifier_weight": 1.0, "prior_lr_factor": 1.0}

    def __post_init__(self) -> None:
        if not 0.0 <= self.sup_frac <= 1.0:
            raise ValueError(f"--sup-frac must be in [0, 1], got {self.sup_frac}")
        check_positive(
            self, "epochs", "batch_size", "lr", "k_samples", "z_style_dim", "z_char_dim", "classifier_weight", "prior_lr_factor"
        )
