"""The settings of the independent classifier (the judge, :mod:`.classifier`), apart from its
code: ``ccvae-pyro train-classifier`` builds its options from :class:`ClassifierConfig`, and this
module imports neither torch nor Pyro, so that its ``--help`` and option errors answer at once
(docs/benchmarks.md, Start-up time)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DataConfig, RunSection, check_positive, option
from ..errors import UserError

if TYPE_CHECKING:
    from ..config import TrainConfig

#: ``config.json``'s mark of a judge written with a manifest (one without it predates manifests).
JUDGE_FORMAT = 2


@dataclass
class ClassifierConfig(RunSection, DataConfig):
    """How the independent classifier was trained (the data and run options of a training run,
    and its own); saved flat as ``DIR/config.json``."""

    epochs: int = option(10, group="optimisation", help="The most epochs to train (fewer when the validation loss stops falling; with --resume: the new most).", resume=True)
    batch_size: int = option(64, group="optimisation", help="Images per step of the judge's training.")
    lr: float = option(1e-3, group="optimisation", help="Adam's learning rate for the judge's network.")
    patience: int = option(2, group="optimisation", help="Stop when the validation loss has not fallen by --min-delta for this many epochs; the best epoch's weights are kept.")
    min_delta: float = option(1e-3, group="optimisation", help="The least fall of the validation loss (nats per seen label) that counts as an improvement.")
    validation_fraction: float = option(0.1, group="optimisation", help="Share of the training split held out (seeded by --seed) to decide when to stop.")
    gp_steps: int = option(300, group="judge", help="Adam steps fitting the GP head that measures the judge's uncertainty (0: no GP head).")
    gp_inducing: int = option(200, group="judge", help="Inducing points of the GP head.")
    gp_points: int = option(2000, group="judge", help="Training images (a seeded subsample) whose features fit the GP head.")

    def __post_init__(self) -> None:
        check_positive(self, "epochs", "batch_size", "lr", "patience", "gp_inducing", "gp_points")
        if self.min_delta < 0:
            raise UserError(f"--min-delta must be at least 0, got {self.min_delta}")
        if not 0 < self.validation_fraction < 1:
            raise UserError(f"--validation-fraction must be between 0 and 1 (both excluded), got {self.validation_fraction}")
        if self.gp_steps < 0:
            raise UserError(f"--gp-steps must be at least 0, got {self.gp_steps}")

    @classmethod
    def like_run(cls, config: TrainConfig, **options) -> "ClassifierConfig":
        """A classifier on the same data as a training run's ``config``."""
        return cls(**{**config.data.options(), "seed": config.run.seed, **options})

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "judge_format": JUDGE_FORMAT}, indent=2, allow_nan=False) + "\n"

    def save(self, path: Path) -> None:
        from ..checkpoint import atomic_write_text  # imports torch: not when the options are built

        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> "ClassifierConfig":
        """The config in ``path``; a one-line ``ValueError`` naming the file when it cannot be read."""
        from ..checkpoint import read_json_object, shown  # imports torch: not when the options are built

        raw = read_json_object(path)
        if raw is None:
            raise UserError(f"{shown(path)} is missing or not a JSON object; train the classifier again")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (TypeError, ValueError) as error:
            raise UserError(f"{shown(path)} cannot be read ({' '.join(str(error).split())}); train the classifier again") from None
