"""The data contract every data set follows (docs/contracts.md, The data layout).

A data set is a function ``load(options: DataOptions) -> DataSplits`` registered in
:data:`pyro_ccvae.data.DATASETS`. Each split is an :class:`ImageSet`: whole-split tensors
(uint8 images, float class indices per label, bool observation masks), so training indexes
batches directly and never decodes an image. The **label spec** is the labels' names and their
numbers of classes (:attr:`ImageSet.num_classes`; a binary label has 2 classes, 0/1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import UserError
from .label_spec import check_num_classes


class DataError(UserError):
    """Bad or missing input data. Its message is one line saying what is wrong and how to fix it."""


@dataclass
class ImageSet(torch.utils.data.Dataset):
    """One split of a labelled image data set.

    :param images: ``uint8`` tensor ``[N, C, H, W]`` (may be backed by a memory-mapped cache).
    :param labels: ``float32`` tensor ``[N, L]`` of class indices (0/1 for a binary label),
        filled with 0 where unobserved.
    :param mask: ``bool`` tensor ``[N, L]``; ``True`` where the label is observed.
    :param label_names: the ``L`` label names, in column order.
    :param ids: one source identifier per image (a file path, an index), for split manifests.
    :param attributes: optional ground-truth factors ``[N, A]`` (built-in data sets only).
    :param num_classes: classes per label, ``K_i >= 2`` (default: 2 each, every label binary).
    """

    images: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor
    label_names: tuple[str, ...]
    ids: Optional[list[str]] = None
    attributes: Optional[torch.Tensor] = None
    num_classes: Optional[tuple[int, ...]] = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (n, len(self.label_names)) or self.mask.shape != self.labels.shape:
            raise ValueError(
                f"labels {tuple(self.labels.shape)} and mask {tuple(self.mask.shape)} must both be "
                f"[{n}, {len(self.label_names)}]"
            )
        if self.mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool, got {self.mask.dtype}")
        self.num_classes = check_num_classes(self.num_classes, len(self.label_names))
        high = torch.tensor(self.num_classes, dtype=self.labels.dtype) - 1
        bad = self.mask & ((self.labels < 0) | (self.labels > high) | (self.labels != self.labels.round()))
        if bad.any():
            row, column = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"label {self.label_names[column]!r} of point {row} is {float(self.labels[row, column])}, "
                f"not a class index in 0..{self.num_classes[column] - 1}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self.images[index], self.labels[index], self.mask[index]

    def subset(self, index: torch.Tensor) -> "ImageSet":
        """The points at ``index`` (a long tensor), as a new :class:`ImageSet`."""
        return ImageSet(
            images=self.images[index],
            labels=self.labels[index],
            mask=self.mask[index],
            label_names=self.label_names,
            ids=None if self.ids is None else [self.ids[i] for i in index.tolist()],
            attributes=None if self.attributes is None else self.attributes[index],
            num_classes=self.num_classes,
        )


@dataclass
class DataSplits:
    """A data set's train/valid/test splits and what a model needs to know about them."""

    train: ImageSet
    valid: ImageSet
    test: ImageSet
    name: str
    #: free-form description of where the data came from (paths, options), saved in the run.
    source: dict = field(default_factory=dict)
    #: for data with known factors (``ImageSet.attributes``): names of the attribute columns and
    #: ``render(attributes [N, A]) -> uint8 images``, so analysis can draw ground-truth counterfactuals.
    attribute_names: Optional[tuple[str, ...]] = None
    render: Optional[Callable[[torch.Tensor], torch.Tensor]] = None

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.train.label_names

    @property
    def num_classes(self) -> tuple[int, ...]:
        return self.train.num_classes

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]

    def manifest(self) -> dict:
        """Which source item went to which split (saved as ``splits.json`` in the run directory)."""
        return {
            split: (s.ids if s.ids is not None else list(range(len(s))))
            for split, s in (("train", self.train), ("valid", self.valid), ("test", self.test))
        }


@dataclass
class DataOptions:
    """Options shared by every loader; a loader ignores those that do not apply to it.

    CheXpert-only: ``uncertain`` (``ignore|zeros|ones`` or per label ``Edema=ones,*=zeros``),
    ``blank`` (``zeros|ignore``), ``views`` (``frontal|lateral|all``).
    CelebA-only: ``center_crop``.
    """

    data_dir: Optional[Path] = None
    image_size: int = 64
    labels: Optional[tuple[str, ...]] = None
    cache_dir: Optional[Path] = None
    skip_bad_images: bool = False
    seed: int = 0
    valid_fraction: float = 0.1
    uncertain: str = "ignore"
    blank: str = "zeros"
    views: str = "frontal"
    center_crop: bool = False
    #: built-in data sets only: how many training images to render.
    num_train: Optional[int] = None


Loader = Callable[[DataOptions], DataSplits]


def as_float_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> float in ``[0, 1]`` on ``device``."""
    return images.to(device, non_blocking=True).float().div_(255)
