"""Optional TensorBoard event files (``--tensorboard``), beside ``metrics.jsonl``.

``RUN/tensorboard/`` (:func:`pyro_ccvae.run_directory.tensorboard_dir`) gets, from rank 0:

=========================  =====================================================================
``train/loss_per_image``   the loss of every step over its batch's images, by optimiser step
``epoch/loss_per_image``   each epoch's mean, as in ``metrics.jsonl``, by epoch (and the other
                           numbers of an epoch's line: ``images_per_s``, ``bf16_elbo_gap``)
``valid/accuracy/<label>`` validation accuracy per label, and ``valid/accuracy_mean``
``reconstructions``        a grid per epoch: fixed validation images (top row) over their
                           reconstructions (bottom row), for families that reconstruct
=========================  =====================================================================

``tensorboard`` is an optional dependency (``pip install 'pyro-ccvae[tracking]'``):
``torch.utils.tensorboard`` needs it, and it is imported only when asked for. A resumed run
passes ``purge_step``, so that TensorBoard drops what an interrupted run logged after its
checkpoint instead of showing those steps twice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch


class TrackingError(RuntimeError):
    """Tracking asked for and not available; the message is one line."""


def image_grid(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Rows of images ``[n, C, H, W]`` (floats in [0, 1], same shape) -> one image ``[C, rows*H, n*W]``."""
    stacked = torch.stack(list(rows))  # [R, n, C, H, W]
    r, n, c, h, w = stacked.shape
    return stacked.permute(2, 0, 3, 1, 4).reshape(c, r * h, n * w).clamp(0, 1)


def require_tensorboard() -> None:
    """A one-line :class:`TrackingError` unless TensorBoard's writer can be imported (training
    asks before it makes the run folder, so that a missing package leaves nothing behind)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise TrackingError(
            "--tensorboard needs the tensorboard package, which is not installed: "
            "pip install 'pyro-ccvae[tracking]' (or pip install tensorboard), or train without --tensorboard"
        ) from None


class TensorBoardLog:
    """Writes the run's events into ``folder`` (see the module doc)."""

    def __init__(self, folder: Path, purge_step: Optional[int] = None):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def step_losses(self, first_step: int, losses_per_image: Sequence[float]) -> None:
        """The per-image losses of consecutive optimiser steps from ``first_step`` (0-based)."""
        for offset, value in enumerate(losses_per_image):
            self.writer.add_scalar("train/loss_per_image", value, first_step + offset + 1)

    def epoch(self, record: dict, originals: Optional[torch.Tensor] = None, reconstructions: Optional[torch.Tensor] = None) -> None:
        """One epoch's line of ``metrics.jsonl`` and, if given, its reconstruction grid."""
        epoch = record["epoch"]
        for key in ("loss", "images_per_s", "bf16_elbo_gap", "labelled"):  # labelled: a --sup-schedule run's
            if record.get(key) is not None:
                name = "loss_per_image" if key == "loss" else key
                self.writer.add_scalar(f"epoch/{name}", record[key], epoch)
        for label, accuracy in (record.get("valid_accuracy") or {}).items():
            if accuracy is not None:
                self.writer.add_scalar(f"valid/accuracy/{label}", accuracy, epoch)
        if record.get("valid_accuracy_mean") is not None:
            self.writer.add_scalar("valid/accuracy_mean", record["valid_accuracy_mean"], epoch)
        if originals is not None and reconstructions is not None:
            self.writer.add_image("reconstructions", image_grid([originals, reconstructions]), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
