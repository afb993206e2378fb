"""A categorical representation and judge that are exact by construction, so the analysis's
answers are known by hand.

Three labels: ``shape`` (3 classes), ``digit`` (4) and ``flag`` (binary); ``d_c = 1``. The prior
of class ``k`` of every label is ``Normal(SPACING * k, 1)``; an "image" is ``1 x 1 x L`` pixels
whose pixel ``i`` is ``z_c^i / 255`` (so a data image of classes ``y`` holds ``SPACING * y`` grey
levels), and the judge reads each pixel as the nearest class mean. With ``leak`` the decoder
also adds ``leak * z_c^shape`` to the flag's pixel: an intervention on ``shape`` then moves the
flag too (the entangled case).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import torch

from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.data import DataSplits, ImageSet
from pyro_ccvae.models.base import CAPABILITIES, LIKELIHOOD, Representation

NAMES = ("shape", "digit", "flag")
NUM_CLASSES = (3, 4, 2)
SPACING = 10.0  # grey levels between neighbouring class means
STYLE_DIM = 2


class FakeCategorical(Representation):
    """Every capability but ``likelihood``, in closed form (see the module doc).

    :param separation: the distance between neighbouring class means in units of ``SPACING``
        (0: every class has the same prior, the model ignores ``y``).
    """

    capabilities = frozenset(CAPABILITIES) - {LIKELIHOOD}

    def __init__(self, leak: float = 0.0, separation: float = 1.0):
        super().__init__("fake", NAMES, NUM_CLASSES)
        self.leak, self.separation = leak, separation
        self.top = max(NUM_CLASSES)

    def _class_means(self, y: torch.Tensor) -> torch.Tensor:
        return SPACING * self.separation * y

    def encode(self, x):
        z_c = (x[..., 0, 0, :] * 255).unsqueeze(-1)  # [B, L, 1]
        return z_c, torch.zeros(*x.shape[:-3], STYLE_DIM)

    def classify(self, z_c):
        k = torch.arange(self.top, dtype=z_c.dtype)
        logits = -((z_c - SPACING * k) ** 2) / 2  # [..., L, K]
        allowed = k < torch.tensor(NUM_CLASSES).unsqueeze(-1)  # [L, K]
        return torch.where(allowed, logits, torch.tensor(float("-inf"))).softmax(-1)

    def decode(self, z_c, z_s):
        pixels = z_c[..., 0].clone()
        pixels[..., 2] = pixels[..., 2] + self.leak * z_c[..., 0, 0]
        return (pixels / 255).unsqueeze(-2).unsqueeze(-2)  # [..., 1, 1, L]

    def label_prior(self):
        k = torch.arange(self.top)
        allowed = (k < torch.tensor(NUM_CLASSES).unsqueeze(-1)).float()
        return allowed / allowed.sum(-1, keepdim=True)

    def sample_labels(self, num, fixed=None):
        y = torch.distributions.Categorical(self.label_prior()).sample((num,)).float()
        for column, value in (fixed or {}).items():
            y[:, column] = float(value)
        return y

    def sample_characteristic(self, y, sample=True):
        loc = self._class_means(y).unsqueeze(-1)
        return loc + torch.randn_like(loc) if sample else loc

    def sample_style(self, shape):
        return torch.randn(*shape, STYLE_DIM)

    def intervene(self, z_c, label, value, sample=True):
        y = torch.zeros(z_c.shape[:-1])
        y[..., label] = torch.as_tensor(value, dtype=y.dtype)
        z = z_c.clone()
        z[..., label, :] = self.sample_characteristic(y, sample)[..., label, :]
        return z

    def class_prior(self, label):
        k = torch.arange(NUM_CLASSES[label], dtype=torch.get_default_dtype())
        return self._class_means(k).unsqueeze(-1), torch.ones(NUM_CLASSES[label], 1)


class NearestClassJudge:
    """Reads pixel ``i`` of an image as label ``i``: class log-probabilities ``softmax_k(-(u - SPACING k)^2 / 2)``
    of the grey level ``u``, ``-inf`` for the classes a label lacks (a :class:`~.judge.LabelReader` stand-in)."""

    def log_probs(self, x):
        u = (x[..., 0, 0, :] * 255).unsqueeze(-1)  # [..., L, 1]
        k = torch.arange(max(NUM_CLASSES), dtype=u.dtype)
        logits = -((u - SPACING * k) ** 2) / 2
        allowed = k < torch.tensor(NUM_CLASSES).unsqueeze(-1)
        return torch.where(allowed, logits, torch.tensor(float("-inf"))).log_softmax(-1)

    def decisions(self, x):
        return self.log_probs(x).argmax(-1)


def labels_of(n: int) -> torch.Tensor:
    """``[n, 3]``: shape always 0 (so a leak leaves reconstructions exact), digit ``i mod 4``, flag ``i mod 2``."""
    i = torch.arange(n)
    return torch.stack([torch.zeros(n), (i % 4).float(), (i % 2).float()], dim=1)


def image_set(labels: torch.Tensor) -> ImageSet:
    images = (SPACING * labels).to(torch.uint8).reshape(len(labels), 1, 1, len(NAMES))
    return ImageSet(images, labels, torch.ones_like(labels, dtype=torch.bool), NAMES, num_classes=NUM_CLASSES)


def fake_run(path: Optional[Path] = None, n: int = 8, leak: float = 0.0, separation: float = 1.0) -> SimpleNamespace:
    """What the analysis tasks read of a run (:class:`pyro_ccvae.run_directory.Run`), with a fake model."""
    split = image_set(labels_of(n))
    data = DataSplits(split, split, split, "fake")
    info = {"label_names": list(NAMES), "num_classes": list(NUM_CLASSES), "channels": 1, "image_size": 1}
    return SimpleNamespace(
        path=path, representation=FakeCategorical(leak, separation), device=torch.device("cpu"), label_names=list(NAMES),
        num_classes=list(NUM_CLASSES), data=data, config=SimpleNamespace(data=SimpleNamespace(info=info)),
        scope=contextlib.nullcontext,
    )  # fmt: skip


def fake_analysis(n: int = 8, leak: float = 0.0, separation: float = 1.0, judge: bool = True) -> Analysis:
    run = fake_run(None, n, leak, separation)
    return Analysis(run, run.data.test, batch_size=3, progress=False, classifier=NearestClassJudge() if judge else None)


def level_side_data(n: int = 80) -> DataSplits:
    """A judge's fake data set: a 3-class brightness ``level`` and a binary left/right bar ``side``,
    ``n`` images of 1 x 32 x 32 (no rendering: fast), one split serving as train, validation and test."""
    g = torch.Generator().manual_seed(0)
    labels = torch.stack([torch.randint(0, 3, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)], 1).float()
    images = torch.zeros(n, 1, 32, 32, dtype=torch.uint8)
    images[:, :, :16] = (80 * labels[:, 0]).to(torch.uint8).reshape(n, 1, 1, 1)
    for row, side in enumerate(labels[:, 1].long().tolist()):
        images[row, :, 20:, 16 * side : 16 * side + 16] = 255
    split = ImageSet(images, labels, torch.ones_like(labels, dtype=torch.bool), ("level", "side"), num_classes=(3, 2))
    return DataSplits(split, split, split, "fake")
