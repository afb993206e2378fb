"""The training split as the steps take it: placed on the device, masked to the current supervision
stage's labelled subset, visited in a seeded order per epoch and sharded over the processes."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..data import ImageSet, as_float_images
from ..distributed import World
from ..supervision import Stage, nested_subsets, stage_counts, stage_spans

#: on CUDA, move a whole split to the device when its images take less than this.
DEVICE_RESIDENT_BYTES = 4 << 30


class TrainingSet:
    """The training points' images, labels and masks on ``device``.

    :param stages: the supervision stages (one, ``--sup-frac``'s, without a schedule).
    :param labelled: what ``labelled.json`` holds: the first stage's points, each later stage's a prefix of them.
    """

    def __init__(self, train: ImageSet, stages: Sequence[Stage], labelled: torch.Tensor, device: torch.device,
                 world: World, batch_size: int, seed: int):  # fmt: skip
        self.train, self.stages, self.device, self.world = train, tuple(stages), device, world
        self.batch_size, self.seed = batch_size, seed
        #: each stage's labelled subset (sorted indices).
        self.stage_labelled = nested_subsets(labelled, stage_counts(self.stages, len(train)))
        #: the supervision stage (0-based) whose labelled subset the batches carry (:meth:`use_stage`).
        self.stage: Optional[int] = None
        # Labels and masks are small: on the device, so that a step indexes them there.
        self.labels = train.labels.to(device)
        self.use_stage(0)
        if device.type == "cuda" and train.images.numel() < DEVICE_RESIDENT_BYTES:
            self.images = train.images.to(device)
        else:
            self.images = train.images

    def __len__(self) -> int:
        return len(self.train)

    def use_stage(self, stage: int) -> None:
        """Mask the labels of the points outside supervision stage ``stage`` (0-based)."""
        if self.stage == stage:
            return
        keep = torch.zeros(len(self.train), dtype=torch.bool)
        keep[self.stage_labelled[stage]] = True
        self.mask = (self.train.mask & keep.unsqueeze(-1)).to(self.device)
        self.stage = stage

    def batch(self, index: torch.Tensor, index_on_device: Optional[torch.Tensor] = None):
        """Images, labels and masks of the training points ``index`` (CPU), on the device;
        ``index_on_device``: the same indices on the device (saves a copy)."""
        on_device = index.to(self.device) if index_on_device is None else index_on_device
        if self.images.device == self.device:
            images = self.images[on_device]
        else:  # a split too large for the device: gather on the host, copy from pinned memory
            images = self.images[index]
            if self.device.type == "cuda":
                images = images.pin_memory()
        return as_float_images(images, self.device), self.labels[on_device], self.mask[on_device]

    def first(self, count: int):
        """The batch of the first ``count`` training points (fixed checks before training)."""
        return self.batch(torch.arange(min(count, len(self.train))))

    def epoch_order(self, epoch: int) -> torch.Tensor:
        # Keyed by epoch, so a resumed run visits the same batches in the same order.
        generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        return torch.randperm(len(self.train), generator=generator)

    def batches_per_epoch(self) -> int:
        return -(-len(self.train) // self.batch_size)

    def shard(self, batch: torch.Tensor, batch_on_device: torch.Tensor):
        """This process's shard of a batch (CPU and device indices) and the position of its first point in the batch."""
        rank, size = self.world.rank, self.world.size
        sizes = [len(part) for part in batch.tensor_split(size)]
        return batch.tensor_split(size)[rank], batch_on_device.tensor_split(size)[rank], sum(sizes[:rank])

    def schedule_summary(self, epochs: int) -> list[dict]:
        """Each stage of a supervision schedule: its fraction, epochs (first, last) and labelled points."""
        spans = stage_spans(self.stages, epochs)
        return [
            {"stage": k + 1, "sup_frac": stage.sup_frac, "epochs": list(span), "labelled": len(self.stage_labelled[k])}
            for k, (stage, span) in enumerate(zip(self.stages, spans))
        ]
