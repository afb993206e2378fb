"""What training reports (rank 0): each epoch's validation and line of ``metrics.jsonl`` (and
TensorBoard's events, :mod:`pyro_ccvae.tracking`), and at the end ``summary.json`` with the test
accuracy and the health checks (:mod:`pyro_ccvae.health`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import run_directory
from ..data import DataSplits, as_float_images
from ..health import check_health, mean_image
from ..models.base import RECONSTRUCT
from ..prediction import label_accuracy, mean_of
from .checkpointing import Position
from .errors import TrainingError

log = logging.getLogger(__name__)

#: validation images in each epoch's TensorBoard reconstruction grid.
GRID_IMAGES = 8


@torch.no_grad()
def predict_probs(representation, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Per-label class probabilities of every image (the representation's ``predict``): ``[N, L, K]`` on the CPU."""
    out = [
        representation.predict(as_float_images(images[i : i + batch_size], device)).cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(out)


class EpochReport:
    """Rank 0's report of a run in ``run_dir`` on ``data`` through the model's ``representation``;
    ``seed``: the run's (the health checks' random draws)."""

    def __init__(self, run_dir: Path, data: DataSplits, representation, device: torch.device, seed: int):
        self.run_dir, self.data, self.representation, self.device, self.seed = run_dir, data, representation, device, seed
        self._tensorboard = None

    def open_tensorboard(self, purge_step: Optional[int]) -> None:
        """Write TensorBoard's events too; ``purge_step``: a resumed run's first step (what an
        interrupted run logged from there on is dropped)."""
        from ..tracking import TensorBoardLog  # imports torch.utils.tensorboard: only when asked for

        folder = run_directory.tensorboard_dir(self.run_dir)
        self._tensorboard = TensorBoardLog(folder, purge_step=purge_step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def step_losses(self, steps_before: int, losses_per_image: list[float]) -> None:
        """The per-image losses of consecutive optimiser steps after the first ``steps_before``."""
        if self._tensorboard is not None:
            self._tensorboard.step_losses(steps_before, losses_per_image)

    def end_epoch(self, position: Position, seconds: float, images_at_start: int, more: Callable[[], dict], kept: str) -> dict:
        """Validate, append the epoch's line to ``metrics.jsonl`` (and TensorBoard); the line.
        ``more()``: the line's other numbers (the stage, the bf16 gap, the objective's counts);
        ``kept``: the checkpoint that a failure leaves, in words."""
        valid_probs = predict_probs(self.representation, self.data.valid.images, self.device)
        if not torch.isfinite(valid_probs).all():  # finite but overflowing parameters
            raise TrainingError(
                f"the predictions became NaN in epoch {position.epoch + 1} (the parameters overflow); "
                f"{kept}; try a new run with a lower --lr"
            )
        valid_acc = label_accuracy(valid_probs, self.data.valid)
        record = {
            "epoch": position.epoch + 1,
            "loss": position.loss_sum / max(position.images, 1),
            "valid_accuracy": dict(zip(self.data.label_names, valid_acc)),
            "valid_accuracy_mean": mean_of(valid_acc),
            "seconds": seconds,
            "images_per_s": (position.images - images_at_start) / max(seconds, 1e-9),
            **more(),
        }
        run_directory.append_epoch_metrics(self.run_dir, record)
        if self._tensorboard is not None:
            self._tensorboard.epoch(record, *self._reconstructions())
        return record

    @staticmethod
    def log_epoch(record: dict, stages: int) -> None:
        """The epoch's line in the log; ``stages``: the supervision schedule's stages."""
        log.info(
            "epoch %d: loss %.2f/image, valid accuracy %s, %.0f images/s%s",
            record["epoch"],
            record["loss"],
            "n/a" if record["valid_accuracy_mean"] is None else f"{record['valid_accuracy_mean']:.3f}",
            record["images_per_s"],
            f", supervision stage {record['sup_stage']}/{stages} ({record['labelled']} labelled)" if "sup_stage" in record else "",
        )

    @torch.no_grad()
    def _reconstructions(self) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Fixed validation images and their reconstructions (for TensorBoard), if the family reconstructs."""
        split = self.data.valid if len(self.data.valid) else self.data.test
        if RECONSTRUCT not in self.representation.capabilities or not len(split):
            return None, None
        x = as_float_images(split.images[:GRID_IMAGES], self.device)
        return x.cpu(), self.representation.reconstruct(x).float().cpu()

    def summary(self, epochs: int, labelled: int, sup_stages: Optional[list[dict]]) -> dict:
        """Write ``summary.json`` after ``epochs`` epochs with ``labelled`` points labelled in the
        last; ``sup_stages``: a supervision schedule's stages."""
        test_acc = label_accuracy(predict_probs(self.representation, self.data.test.images, self.device), self.data.test)
        summary = {
            "epochs": epochs,
            "test_accuracy": dict(zip(self.data.label_names, test_acc)),
            "test_accuracy_mean": mean_of(test_acc),
            "labelled": labelled,
            "health": self._health(),
        }
        if sup_stages is not None:
            summary["sup_stages"] = sup_stages
        run_directory.write_summary(self.run_dir, summary)
        return summary

    def _health(self) -> dict:
        """:func:`~pyro_ccvae.health.check_health` on the validation split (the test split if it is empty)."""
        split_name, split = ("valid", self.data.valid) if len(self.data.valid) else ("test", self.data.test)
        with torch.no_grad():
            health = check_health(
                self.representation, split.images, mean_image(self.data.train.images), self.data.label_names,
                self.device, seed=self.seed,
            )
        return {"split": split_name, **health}
