"""A trained run for notebooks: tensors in, tensors out.

::

    from pyro_ccvae import api

    run = api.load("runs/shapes")          # config, model and guide; data on demand
    x = run.images(8)                      # the first 8 test images [8, C, H, W], floats in [0, 1]
    y, seen = run.labels(8)                # their classes [8, L] and where they are known [8, L]
    z_c, z_s = run.encode(x)               # posterior means
    probs = run.predict(x)                 # [B, L, K] class probabilities per label
    run.decode(z_c, z_s); run.reconstruct(x); run.generate({"red": 1}, 8); run.intervene(x, "red", 0)
    run.swap(x[:4], x[4:]); run.traverse(x[:2], "square", steps=5)

Every method runs without gradients and with the run's own Pyro parameter store (your
param store is left alone), asks the model for the capabilities it needs (a one-line
:class:`~pyro_ccvae.models.CapabilityError` if it lacks one) and returns tensors on the run's
device. Images are a batch ``[B, C, H, W]`` torch tensor, floats in ``[0, 1]`` or ``uint8``; one
image ``[C, H, W]`` or a numpy array is refused in one line that says what to pass. Labels are
named (``"red"``) or numbered (``2``); classes are indices ``0..K_i-1`` (0/1 for a binary label;
:attr:`Loaded.num_classes`), and a class out of range is a one-line error. :meth:`Loaded.write`
runs a research task (``evaluate``, ``traverse``, ...) that writes figures and metrics into the
run directory: the ``ccvae-pyro`` analysis commands call it.

The run's Pyro model and guide (:attr:`Loaded.model`, :attr:`Loaded.guide`) take ``(x, y, mask)``
and work with Pyro's own tools, each call with the run's parameter store::

    samples = pyro.infer.Predictive(run.model, guide=run.guide, num_samples=16)(x)
    # the CCVAE: images of the classes y [B, L] (its sites and plates: docs/contracts.md)
    trace = poutine.trace(poutine.condition(run.model, data={"y": y.T})).get_trace(batch_size=len(y))
    means = trace.nodes["x"]["fn"].mean
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Optional, Union

import torch

from .analysis import tasks
from .analysis.labels import parse_label_list
from .analysis.tasks import Written
from .analysis.traversal import traversal_values, traverse as traverse_images
from .data import as_float_images
from .errors import UserError
from .models.base import DECODE, ENCODE, INTERVENE, PREDICT, RECONSTRUCT, SAMPLE, SWAP, TRAVERSE
from .run_directory import Run, load_run
from . import sizes

Label = Union[str, int]

#: the research tasks :meth:`Loaded.write` runs, by name.
TASKS = {"evaluate": tasks.evaluate, "traverse": tasks.traverse, "generate": tasks.generate, "intervene": tasks.intervene, "swap": tasks.swap}


def load(
    path: Union[str, Path],
    device: str = "cpu",
    data: bool = True,
    trust: bool = False,
    data_dir: Optional[Union[str, Path]] = None,
    cache_dir: Optional[Union[str, Path]] = None,
) -> "Loaded":
    """Load the run in ``path`` (see :func:`pyro_ccvae.run_directory.load_run`).

    :param data: load the run's data splits too (for :meth:`Loaded.images` and the tasks).
    :param trust: allow a guide given by import path in the run's config (that imports code).
    """
    return Loaded(load_run(Path(path), device, load_data=data, trust=trust, data_dir=data_dir, cache_dir=cache_dir))


class Loaded:
    """A loaded run's verbs (see the module doc). :attr:`run` is the :class:`~pyro_ccvae.run_directory.Run`."""

    def __init__(self, run: Run):
        self.run = run
        self.representation = run.representation
        self._latent_shapes: Optional[list[list[int]]] = None  # of z_c and z_s, found on first decode

    def __repr__(self) -> str:
        return f"<pyro_ccvae run {self.run.path} ({self.representation.family}, labels {', '.join(self.label_names)})>"

    @property
    def label_names(self) -> list[str]:
        return self.run.label_names

    @property
    def num_classes(self) -> list[int]:
        """Classes per label (2 for a binary label)."""
        return list(self.representation.num_classes)

    @property
    def device(self) -> torch.device:
        return self.run.device

    @property
    def model(self) -> torch.nn.Module:
        """The run's Pyro model ``model(x, y=None, mask=None)`` (in eval mode; each call uses the run's params)."""
        return self.run.model

    @property
    def guide(self) -> torch.nn.Module:
        """The run's Pyro guide ``guide(x, y=None, mask=None)`` (in eval mode; each call uses the run's params)."""
        return self.run.guide

    def _call(self, task: str, needs: tuple[str, ...], function, *args):
        self.representation.require(task, needs)
        with self.run.scope(), torch.no_grad():
            return function(*args)

    def _image_shape(self) -> list[int]:
        """``[C, H, W]`` of the images the run's networks take."""
        data = getattr(self.run, "data", None)
        if data is not None:  # the images the run was trained on say it best
            return list(data.test.images.shape[1:])
        info = self.run.config.data.info
        return [info["channels"], info["image_size"], info["image_size"]]

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        """Images as floats in ``[0, 1]`` on the run's device (uint8 images are scaled); a
        :class:`ValueError` naming the shape the run's networks take for anything else."""
        shape = self._image_shape()
        wanted = f"images [B, {', '.join(map(str, shape))}] (batch, channels, height, width)"
        if not isinstance(x, torch.Tensor):
            raise UserError(f"this run takes {wanted} as a torch tensor, got {type(x).__name__}")
        if x.dim() == 3 and list(x.shape) == shape:
            raise UserError(f"this run takes {wanted}, got one image {list(x.shape)}; pass x[None] for a batch of one")
        if x.dim() != 4 or list(x.shape[1:]) != shape:
            raise UserError(f"this run takes {wanted}, got {list(x.shape)}")
        if x.dtype == torch.bool or x.is_complex():
            raise UserError(f"this run takes {wanted} as floats in [0, 1] or uint8, got {x.dtype}")
        return as_float_images(x, self.device) if x.dtype == torch.uint8 else x.to(self.device)

    def _latents(self, z_c: torch.Tensor, z_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_c`` and ``z_s`` on the run's device; a :class:`ValueError` naming the shapes this
        run's :meth:`encode` returns (which :meth:`decode` takes) for anything else."""
        if self._latent_shapes is None:
            blank = torch.zeros(1, *self._image_shape(), device=self.device)
            self._latent_shapes = [list(z.shape[1:]) for z in self._call("decode", (ENCODE,), self.representation.encode, blank)]
        (shape_c, shape_s), shown = self._latent_shapes, lambda shape: ", ".join(map(str, ["B", *shape]))
        wanted = f"z_c [{shown(shape_c)}] and z_s [{shown(shape_s)}] (as encode returns them)"
        for z in (z_c, z_s):
            if not isinstance(z, torch.Tensor):
                raise UserError(f"this run decodes {wanted} as torch tensors, got {type(z).__name__}")
            if not z.is_floating_point():
                raise UserError(f"this run decodes {wanted} as floats, got {z.dtype}")
        if list(z_c.shape) == shape_c and list(z_s.shape) == shape_s:
            raise UserError(f"this run decodes {wanted}, got the latents of one image; pass z_c[None], z_s[None] for a batch of one")
        if list(z_c.shape[1:]) != shape_c or list(z_s.shape[1:]) != shape_s or z_c.dim() < 2 or len(z_c) != len(z_s):
            raise UserError(f"this run decodes {wanted}, got z_c {list(z_c.shape)} and z_s {list(z_s.shape)}")
        return z_c.to(self.device), z_s.to(self.device)

    def _label(self, label: Label) -> int:
        if isinstance(label, int):
            if not 0 <= label < len(self.label_names):
                raise UserError(f"label {label} is out of range; the run has {len(self.label_names)} labels")
            return label
        return parse_label_list(label, self.label_names)[0]

    def _class(self, label: int, k):
        """``k`` (a class index, or one per image) checked against label ``label``'s classes; a
        :class:`ValueError` names their range otherwise."""
        count, values = self.num_classes[label], torch.as_tensor(k)
        if isinstance(k, bool) or values.dtype == torch.bool:  # True would silently read as class 1
            raise UserError(f"class {k!r} of label {self.label_names[label]!r} must be a class index 0..{count - 1}, not a bool")
        if (values != values.round()).any() or ((values < 0) | (values >= count)).any():
            raise UserError(f"class {k!r} of label {self.label_names[label]!r} is out of range; its classes are 0..{count - 1}")
        return int(values) if values.dim() == 0 else k

    # --- images ------------------------------------------------------------------------------

    def _split(self, split: str):
        if self.run.data is None:
            raise UserError("this run was loaded without its data; use api.load(path, data=True)")
        if split not in ("train", "valid", "test"):
            raise UserError(f"split must be 'train', 'valid' or 'test', got {split!r}")
        return getattr(self.run.data, split)

    def images(self, count: Optional[int] = None, split: str = "test") -> torch.Tensor:
        """The first ``count`` images (default all) of a split: ``[N, C, H, W]``, floats in
        ``[0, 1]`` on the device."""
        images = self._split(split).images
        return as_float_images(images[: len(images) if count is None else count], self.device)

    def labels(self, count: Optional[int] = None, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """The labels of :meth:`images`: classes ``[N, L]`` (integers, in :attr:`label_names`'
        order; 0 where not known) and ``seen [N, L]`` (bool, ``True`` where known), on the device."""
        data = self._split(split)
        end = len(data.labels) if count is None else count
        return data.labels[:end].to(self.device, torch.long), data.mask[:end].to(self.device)

    # --- the verbs ---------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means of images ``x [B, C, H, W]``: ``z_c [B, L, d_c]`` and ``z_s [B, d_s]``
        (a baseline's own latents: its representation's :meth:`encode` says which)."""
        return self._call("encode", (ENCODE,), self.representation.encode, self._x(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Per-label class probabilities of images ``x [B, C, H, W]``: ``[B, L, K]`` (``K`` the
        most classes of any label; the classes a label lacks have probability 0)."""
        return self._call("predict", (ENCODE, PREDICT), self.representation.predict, self._x(x))

    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        """The expected image of latents ``z_c [B, L, d_c]`` and ``z_s [B, d_s]`` (shaped as
        :meth:`encode` returns them): ``[B, C, H, W]``."""
        z_c, z_s = self._latents(z_c, z_s)
        return self._call("decode", (DECODE,), self.representation.decode, z_c, z_s)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The expected image at the posterior means of images ``x [B, C, H, W]``: ``[B, C, H, W]``."""
        return self._call("reconstruct", (RECONSTRUCT,), self.representation.reconstruct, self._x(x))

    def generate(self, labels: Union[dict, torch.Tensor, None] = None, count: int = 8, style: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images ``[N, C, H, W]`` from ``z_c ~ p(z_c | y)``, ``z_s ~ p(z_s)`` (or ``style [N, d_s]``).

        :param labels: a dict of fixed labels (``{"red": 1}``; the others drawn from ``p(y)``) for
            ``N = count`` images, or class indices ``[N, L]``.
        """
        rep = self.representation
        if isinstance(labels, torch.Tensor):
            if labels.dim() != 2 or labels.shape[1] != len(self.label_names) or len(labels) == 0:
                raise UserError(
                    f"labels as a tensor must be class indices [N, {len(self.label_names)}] (N >= 1, one column per label: "
                    f"{', '.join(self.label_names)}), got {list(labels.shape)}"
                )
        elif isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise UserError(f"count must be a whole number of images, at least 1, got {count!r}")
        if style is not None and (style.dim() != 2 or style.shape[0] != (len(labels) if isinstance(labels, torch.Tensor) else count)):
            raise UserError(f"style must be z_s [N, d_s] with one row per generated image, got {list(style.shape)}")
        info = self.run.config.data.info
        images = len(labels) if isinstance(labels, torch.Tensor) else count
        # decoded at once: refuse a count that cannot fit before allocating (one line, the figure)
        sizes.require(sizes.decoded_bytes(images, info["channels"], info["image_size"]), f"generating {images} images", "count", self.device)

        def run():
            if isinstance(labels, torch.Tensor):
                y = labels.to(self.device, torch.get_default_dtype())
            else:
                fixed = {self._label(k): v for k, v in (labels or {}).items()}
                y = rep.sample_labels(count, {i: self._class(i, v) for i, v in fixed.items()})
            z_s = rep.sample_style((y.shape[0],)) if style is None else style.to(self.device)
            return rep.decode(rep.sample_characteristic(y), z_s)

        return self._call("generate", (SAMPLE, DECODE), run)

    def intervene(self, x: torch.Tensor, label: Label, k: int, sample: bool = True) -> torch.Tensor:
        """Images ``x [B, C, H, W]`` decoded with ``z_c^label`` drawn from ``p(z_c^label | y_label =
        k)`` (its mean if not ``sample``), the rest of ``z`` at the posterior means: ``[B, C, H, W]``.

        :param k: a class of ``label``, or one per image ``[B]``.
        """
        rep, i = self.representation, self._label(label)
        k = self._class(i, k)

        def run():
            z_c, z_s = rep.encode(self._x(x))
            return rep.decode(rep.intervene(z_c, i, k, sample), z_s)

        return self._call("intervene", (ENCODE, INTERVENE, DECODE), run)

    def swap(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` with the characteristic latents ``z_c`` of ``x1 [B, C, H, W]`` and
        the style ``z_s`` of ``x2 [B, C, H, W]``, image by image."""
        rep = self.representation
        x1, x2 = self._x(x1), self._x(x2)
        if len(x1) != len(x2):
            raise UserError(f"swap pairs x1 and x2 image by image: give as many of each, got {len(x1)} and {len(x2)}")

        def run():
            (z_c, _), (_, z_s) = rep.encode(x1), rep.encode(x2)
            return rep.decode(z_c, z_s)

        return self._call("swap", (ENCODE, SWAP, DECODE), run)

    def traverse(self, x: torch.Tensor, label: Label, steps: int = 9, extend: float = 1.0) -> torch.Tensor:
        """``[B, S, C, H, W]``: each image of ``x [B, C, H, W]`` with ``z_c^label`` walked from beyond the first class's
        prior mean to beyond the second's (``extend`` prior standard deviations; ``S = steps``), or
        for a label of ``K > 2`` classes along the path through its class means (``steps`` per leg,
        ``S = (K-1)(steps-1) + 1``), the rest of ``z`` fixed (see :mod:`pyro_ccvae.analysis.traversal`)."""
        rep, i = self.representation, self._label(label)

        def run():
            z_c, z_s = rep.encode(self._x(x))
            return traverse_images(rep, z_c, z_s, i, traversal_values(rep, i, steps, extend))

        return self._call("traverse", (ENCODE, TRAVERSE, DECODE), run)

    # --- research tasks that write into the run directory --------------------------------------

    def write(self, task: str, **options) -> Written:
        """Run the research task ``task`` (one of :data:`TASKS`) with its options; it writes figures
        into ``RUN/figures``, metrics into ``RUN/metrics.json`` and ``RUN/report.html``."""
        if task not in TASKS:
            raise UserError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        return TASKS[task](self.run, **options)
