"""The analysis context: a loaded run, the split being analysed, and what is computed once.

Analysis talks to the run's :class:`~pyro_ccvae.models.base.Representation` (its capabilities:
encode, predict, decode, sample, intervene, ...), never to a model's internals, so it works for
any guide and any model family that offers what a task needs. Every tensor it creates lives on
the run's device.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional

import torch
from tqdm.auto import tqdm

from ..data import ImageSet, as_float_images
from ..errors import UserError
from ..models import Representation
from ..prediction import predicted_classes
from ..run_directory import Run, RunError
from .judge import LabelReader


@dataclass
class Analysis:
    """A run and one of its splits (by default the test split), seen by every metric and figure.

    :param run: from :func:`pyro_ccvae.run_directory.load_run` (with its data).
    :param split: the images to analyse; :meth:`from_run` picks the test split.
    :param batch_size: images per network pass.
    :param progress: show progress bars for long loops.
    :param classifier: the independent classifier (a :class:`~.judge.LabelReader`) that
        judges edited and generated images, if there is one.
    """

    run: Run
    split: ImageSet
    batch_size: int = 256
    progress: bool = True
    classifier: Optional[LabelReader] = None

    @classmethod
    def from_run(
        cls, run: Run, split: str = "test", max_images: Optional[int] = None, batch_size: int = 256, progress: bool = True
    ) -> "Analysis":
        """The analysis of ``run``'s ``split``, limited to its first ``max_images`` images."""
        if run.data is None:
            raise RunError(f"the run in {run.path} was loaded without its data")
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        images = getattr(run.data, split)
        if max_images is not None:
            if max_images < 1:
                raise UserError(f"--max-images must be at least 1, got {max_images}")
            images = images.subset(torch.arange(min(max_images, len(images))))
        if len(images) == 0:
            raise RunError(f"the {split} split of the run in {run.path} holds no images")
        return cls(run, images, batch_size, progress)

    # --- what the run provides -----------------------------------------------------------

    @property
    def representation(self) -> Representation:
        return self.run.representation

    @property
    def device(self) -> torch.device:
        return self.run.device

    @property
    def label_names(self) -> list[str]:
        return self.run.label_names

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def num_classes(self) -> list[int]:
        """Classes per label, ``K_i`` (2 for a binary label), as the representation declares them."""
        return list(self.representation.num_classes)

    def __len__(self) -> int:
        return len(self.split)

    # --- batches -------------------------------------------------------------------------

    def index_batches(self, desc: Optional[str] = None, count: Optional[int] = None) -> Iterator[torch.Tensor]:
        """Index tensors (CPU) over the first ``count`` images (default all), ``batch_size`` at a time."""
        count = len(self) if count is None else min(count, len(self))
        chunks = torch.arange(count).split(self.batch_size)
        show = self.progress and desc is not None
        yield from tqdm(chunks, desc=desc, unit="batch", disable=not show, leave=False, dynamic_ncols=True)

    def images(self, index: torch.Tensor) -> torch.Tensor:
        """The images at ``index`` as floats in ``[0, 1]`` on the run's device."""
        return as_float_images(self.split.images[index], self.device)

    def labels(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels ``[B, L]`` (float) and mask ``[B, L]`` (bool) at ``index``, on the device."""
        return self.split.labels[index].to(self.device), self.split.mask[index].to(self.device)

    # --- computed once -------------------------------------------------------------------

    @cached_property
    def posterior_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode`` of every image: ``z_c [N, L, d_c]`` and ``z_s [N, d_s]`` on the device."""
        z_c, z_s = [], []
        with torch.no_grad():
            for index in self.index_batches("encoding"):
                c, s = self.representation.encode(self.images(index))
                z_c.append(c)
                z_s.append(s)
        return torch.cat(z_c), torch.cat(z_s)

    @cached_property
    def predicted_probs(self) -> torch.Tensor:
        """Per-label class probabilities at the posterior mean: ``[N, L, K]`` on the device."""
        z_c, _ = self.posterior_means
        with torch.no_grad():
            return self.representation.classify(z_c)

    @cached_property
    def current_labels(self) -> torch.Tensor:
        """Each image's label values ``[N, L]`` (class indices, as floats): the observed label where
        it is seen, else the most probable class. An intervention "switches" a label away from this value."""
        labels, mask = self.split.labels.to(self.device), self.split.mask.to(self.device)
        return torch.where(mask, labels, predicted_classes(self.predicted_probs).to(labels.dtype))

    def require_classifier(self, what: str) -> LabelReader:
        if self.classifier is None:
            raise UserError(f"{what} needs an independent classifier; pass --classifier DIR (see `ccvae-pyro train-classifier`)")
        return self.classifier

    def reconstruct(self, index: torch.Tensor) -> torch.Tensor:
        """Decoder means at the posterior means of the images at ``index``."""
        z_c, z_s = self.posterior_means
        index = index.to(self.device)
        with torch.no_grad():
            return self.representation.decode(z_c[index], z_s[index])
