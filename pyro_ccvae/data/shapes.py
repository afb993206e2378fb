"""The built-in ``shapes`` data set: procedurally rendered colour images with known factors.

Each image shows one object (a square or a circle) on a plain background, and maybe a bar
along the top band. By default six independent binary attributes, each Bernoulli(0.5), are the
labels:

==================  ======================================================================
``square``          1: the object is a square, 0: a circle
``red``             1: a red-ish object, 0: a blue-ish object
``large``           1: a large object, 0: a small one (the size classes never overlap)
``right``           1: the object lies in the right half of the image, 0: the left half
``stripe``          1: a horizontal bar is drawn along the top band of the image
``dark_background`` 1: a dark background, 0: a light background
==================  ======================================================================

Eight continuous nuisance factors, each Uniform(0, 1) and independent, carry "style":
vertical position, horizontal position within the half, size within the size class, object
hue and brightness (within the colour class), background hue and brightness (within the
class), and stripe thickness. The object always stays below the top band and inside its
half, so every label stays readable by eye.

Two **categorical** labels can take the place of the first two binary ones, each only when asked
for in ``--labels`` (``options.labels``), e.g. ``--labels shape,colour,large,right,stripe,dark_background``:

==========  ===========================================================================
``shape``   instead of ``square``: 0 circle, 1 square, 2 triangle (pointing up, in the
            square's box), each with probability 1/3
``colour``  instead of ``red``: 0 blue, 1 red, 2 green, 3 yellow, each with probability 1/4
==========  ===========================================================================

Classes 0 and 1 render exactly as the binary attribute at 0 and 1. A factor is drawn from the
same uniform number either way (binary: ``u < 0.5``, categorical: ``floor(K u)``), so the other
factors of a seed do not depend on the labels chosen, and the default data are unchanged.

:func:`render` turns factor values into images; the loader uses it too, so analysis code can
render counterfactuals (change one label, keep the nuisances) with the same ground truth. The
columns of ``ImageSet.attributes`` (:func:`attribute_names`) follow the labels asked for: the
shape column is ``shape`` when that label is asked for and ``square`` otherwise, and likewise
``colour`` / ``red``; the data set's ``render`` reads that layout.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from .registry import register_dataset
from .base import DataError, DataOptions, DataSplits, ImageSet
from .common import select_labels
from ..sizes import require

#: memory of an image's factors, labels, mask and id beside its pixels (and the factors' float64
#: draws while they are made), in bytes: what a huge ``--num-train`` is checked with.
BYTES_PER_IMAGE_BESIDE_PIXELS = 300

#: the default labels: binary attributes, in column order.
LABEL_NAMES: tuple[str, ...] = ("square", "red", "large", "right", "stripe", "dark_background")
#: the categorical labels' classes, each replacing the binary attribute it extends (class 1 of
#: ``shape`` is ``square`` = 1, class 1 of ``colour`` is ``red`` = 1).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: tuple[str, ...] = ("blue", "red", "green", "yellow")
CATEGORICAL_LABELS: dict[str, tuple[str, tuple[str, ...]]] = {"shape": ("square", SHAPES), "colour": ("red", COLOURS)}
#: the parts of an image :func:`region_mask` outlines.
REGIONS: tuple[str, ...] = ("object", "stripe", "background")
#: the region each label changes in :func:`render` (the categorical labels: as the binary ones they extend).
LABEL_REGIONS: dict[str, str] = {
    "square": "object", "shape": "object", "red": "object", "colour": "object", "large": "object", "right": "object",
    "stripe": "stripe", "dark_background": "background",
}  # fmt: skip
#: continuous nuisance factors, each in [0, 1] (see :func:`render` for what they mean).
NUISANCE_NAMES: tuple[str, ...] = (
    "position_y",
    "position_x",
    "size",
    "object_hue",
    "object_brightness",
    "background_hue",
    "background_brightness",
    "stripe_thickness",
)
#: the columns of ``ImageSet.attributes`` of the default labels: the labels first, then the nuisances.
ATTRIBUTE_NAMES: tuple[str, ...] = LABEL_NAMES + NUISANCE_NAMES
IMAGE_SIZES: tuple[int, ...] = (32, 64)
DEFAULT_NUM_TRAIN = 10000
DEFAULT_NUM_EVAL = 2000

# Geometry, in image units (the image is [0, 1] x [0, 1], y pointing down).
TOP_BAND = 0.1875  # the stripe's band: the top 6 of 32 (12 of 64) rows; the object stays below it
_STRIPE_TOP, _STRIPE_THICKNESS = 0.03, (0.06, 0.12)  # bar spans y in [top, top + thickness]
_STRIPE_X = (0.0625, 0.9375)
_OBJECT_TOP, _OBJECT_BOTTOM = 0.22, 0.97  # the object's extent in y
# Half-side of a square / radius of a circle. A small object is 9-11 px wide at 32 px: at the
# 6-8 px of the first release a decoder rendered squares and circles as one blob (docs/results.md, shapes).
_SIZE_SMALL, _SIZE_LARGE = (0.135, 0.165), (0.195, 0.235)
_HALF_MARGIN = 0.01  # gap between the object and its half's edges
# Colours (HSV, hue in turns).
_HUE_RED, _HUE_BLUE, _HUE_JITTER = 0.0, 0.62, 0.05
#: object hue per class of ``colour`` (blue, red, green, yellow): at least 0.18 turns apart, so
#: with the +-0.05 jitter two classes stay 0.08 apart (red and yellow, the closest, read as
#: red-orange and gold at worst). A green object may match the stripe's green; they never overlap.
_HUES = np.array([_HUE_BLUE, _HUE_RED, 0.38, 0.18])
_OBJECT_SATURATION, _OBJECT_VALUE = 0.85, (0.65, 1.0)
_BG_SATURATION, _BG_DARK, _BG_LIGHT = 0.25, (0.05, 0.25), (0.75, 0.95)
_STRIPE_RGB = (0.1, 0.75, 0.1)
_CHUNK = 2048  # images rendered at a time (bounds memory at 64x64)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``[N]`` hue (turns), saturation, value -> ``[N, 3]`` RGB in [0, 1]."""
    n = np.array([5.0, 3.0, 1.0], dtype=np.float32)
    k = (n[None, :] + 6.0 * (h % 1.0)[:, None]) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _coverage(lo: np.ndarray, hi: np.ndarray, size: int) -> np.ndarray:
    """Fraction of each of ``size`` pixels along one axis inside ``[lo, hi]`` (``[N]``) -> ``[N, size]``."""
    edges = np.arange(size, dtype=np.float32) / size
    px = 1.0 / size
    return np.clip((np.minimum(hi[:, None], edges + px) - np.maximum(lo[:, None], edges)) / px, 0.0, 1.0)


def _geometry(a: np.ndarray):
    """Object centre (x, y) and half-extent ``r`` from factors ``a`` ``[N, A]``."""
    large = a[:, 2] > 0.5
    right = a[:, 3] > 0.5
    u_y, u_x, u_size = a[:, 6], a[:, 7], a[:, 8]
    r = np.where(
        large,
        _SIZE_LARGE[0] + u_size * (_SIZE_LARGE[1] - _SIZE_LARGE[0]),
        _SIZE_SMALL[0] + u_size * (_SIZE_SMALL[1] - _SIZE_SMALL[0]),
    )
    # x: anywhere in its half with the object fully inside (less a margin)
    half_centre = np.where(right, 0.75, 0.25)
    cx = half_centre + (u_x - 0.5) * 2.0 * (0.25 - r - _HALF_MARGIN)
    # y: anywhere below the top band
    cy = _OBJECT_TOP + r + u_y * (_OBJECT_BOTTOM - _OBJECT_TOP - 2.0 * r)
    return cx.astype(np.float32), cy.astype(np.float32), r.astype(np.float32)


def _triangle(cx: np.ndarray, cy: np.ndarray, r: np.ndarray, size: int) -> np.ndarray:
    """Coverage ``[N, H, W]`` of triangles pointing up in the boxes ``[cx - r, cx + r] x [cy - r, cy + r]``
    (apex at the top centre, base along the bottom), with a half-pixel soft edge like the disc's."""
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    x = grid[None, None, :] - cx[:, None, None]  # [N, 1, W], from the centre
    y = grid[None, :, None] - cy[:, None, None]  # [N, H, 1]
    r = r[:, None, None]
    # distance inside the base, and inside each slanted side (normal (+-2, -1) / sqrt(5))
    inside = np.minimum(r - y, (r + y - 2.0 * np.abs(x)) / np.sqrt(5.0).astype(np.float32))
    return np.clip(inside * size + 0.5, 0.0, 1.0)


def _object_coverage(a: np.ndarray, shape: np.ndarray, size: int) -> np.ndarray:
    """The object's share of each pixel ``[N, H, W]`` from factors ``a`` and the shape classes: a
    box is separable; a disc and a triangle use a half-pixel soft edge."""
    cx, cy, r = _geometry(a)
    box = _coverage(cy - r, cy + r, size)[:, :, None] * _coverage(cx - r, cx + r, size)[:, None, :]
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    dist = np.sqrt((grid[None, None, :] - cx[:, None, None]) ** 2 + (grid[None, :, None] - cy[:, None, None]) ** 2)
    disc = np.clip((r[:, None, None] - dist) * size + 0.5, 0.0, 1.0)
    alpha = np.where((shape == 1)[:, None, None], box, disc)
    if (shape == 2).any():  # the binary data have no triangle: skip the work
        alpha = np.where((shape == 2)[:, None, None], _triangle(cx, cy, r, size), alpha)
    return alpha


def _stripe_coverage(a: np.ndarray, size: int) -> np.ndarray:
    """The stripe's share of each pixel ``[N, H, W]`` (zero where no stripe is drawn)."""
    n = a.shape[0]
    thick = _STRIPE_THICKNESS[0] + a[:, 13] * (_STRIPE_THICKNESS[1] - _STRIPE_THICKNESS[0])
    top = np.full(n, _STRIPE_TOP, dtype=np.float32)
    sy = _coverage(top, top + thick.astype(np.float32), size)
    sx = _coverage(np.full(n, _STRIPE_X[0], np.float32), np.full(n, _STRIPE_X[1], np.float32), size)
    return sy[:, :, None] * sx[:, None, :] * (a[:, 4] > 0.5)[:, None, None]


def _render_chunk(a: np.ndarray, shape: np.ndarray, colour: np.ndarray, size: int) -> np.ndarray:
    """Images from factors ``a`` (columns 2.. as in :data:`ATTRIBUTE_NAMES`) and the shape and
    colour classes (indices into :data:`SHAPES`, :data:`COLOURS`)."""
    n = a.shape[0]
    dark = a[:, 5] > 0.5
    alpha = _object_coverage(a, shape, size)[:, None]  # [N, 1, H, W]
    s_alpha = _stripe_coverage(a, size)[:, None]

    # colours [N, 3, 1, 1]
    obj_hue = _HUES[colour] + (a[:, 9] - 0.5) * 2.0 * _HUE_JITTER
    obj_val = _OBJECT_VALUE[0] + a[:, 10] * (_OBJECT_VALUE[1] - _OBJECT_VALUE[0])
    obj_rgb = _hsv_to_rgb(obj_hue, np.full(n, _OBJECT_SATURATION, np.float32), obj_val)
    bg_val = np.where(
        dark,
        _BG_DARK[0] + a[:, 12] * (_BG_DARK[1] - _BG_DARK[0]),
        _BG_LIGHT[0] + a[:, 12] * (_BG_LIGHT[1] - _BG_LIGHT[0]),
    )
    bg_rgb = _hsv_to_rgb(a[:, 11], np.full(n, _BG_SATURATION, np.float32), bg_val)
    obj_rgb = obj_rgb.astype(np.float32)[:, :, None, None]
    bg_rgb = bg_rgb.astype(np.float32)[:, :, None, None]
    stripe_rgb = np.asarray(_STRIPE_RGB, dtype=np.float32)[None, :, None, None]

    img = bg_rgb + alpha * (obj_rgb - bg_rgb)
    img = img + s_alpha * (stripe_rgb - img)
    return np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def attribute_names(labels: Sequence[str] = LABEL_NAMES) -> tuple[str, ...]:
    """The columns of ``ImageSet.attributes`` for the labels ``labels``: :data:`ATTRIBUTE_NAMES`,
    with ``shape`` for ``square`` and ``colour`` for ``red`` where those labels are asked for."""
    names = list(ATTRIBUTE_NAMES)
    for label, (binary, _) in CATEGORICAL_LABELS.items():
        if label in labels:
            names[names.index(binary)] = label
    return tuple(names)


#: every layout of the attribute columns that :func:`render` reads.
_LAYOUTS = {attribute_names(chosen) for chosen in ((), ("shape",), ("colour",), ("shape", "colour"))}


def _classes(column: np.ndarray, num_classes: int) -> np.ndarray:
    """A factor column -> class indices: binary (``num_classes == 2``) read as ``> 0.5``, else
    the nearest class index."""
    if num_classes == 2:
        return (column > 0.5).astype(np.int64)
    return np.clip(np.rint(column), 0, num_classes - 1).astype(np.int64)


def _read_factors(attributes: Union[np.ndarray, torch.Tensor], image_size: int, names: Sequence[str]):
    """Checked factors ``[N, A]`` (clipped to [0, 1]) with their shape and colour classes: what
    :func:`render` and :func:`region_mask` read."""
    if image_size not in IMAGE_SIZES:
        raise DataError(f"shapes renders {' or '.join(map(str, IMAGE_SIZES))} pixel images, not {image_size}; "
                        f"pass --image-size 32 or 64")
    names = tuple(names)
    if names not in _LAYOUTS:
        raise DataError(f"shapes attributes are named {', '.join(ATTRIBUTE_NAMES)}, with shape for square "
                        f"and colour for red when those labels are chosen; got {', '.join(names)}")
    if isinstance(attributes, torch.Tensor):
        attributes = attributes.detach().cpu().numpy()
    a = np.asarray(attributes, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != len(names):
        raise DataError(f"shapes attributes must be [N, {len(names)}] ({', '.join(names)}), got {list(a.shape)}")
    shape = _classes(a[:, 0], len(SHAPES) if names[0] == "shape" else 2)
    colour = _classes(a[:, 1], len(COLOURS) if names[1] == "colour" else 2)
    a = np.clip(a, 0.0, 1.0)
    return a, shape, colour


def render(
    attributes: Union[np.ndarray, torch.Tensor], image_size: int = 32, names: Sequence[str] = ATTRIBUTE_NAMES
) -> torch.Tensor:
    """Render images from factor values.

    :param attributes: ``[N, A]`` factors, columns as in ``names``: the six label factors
        (binary ones read as ``> 0.5``, ``shape`` and ``colour`` as the nearest class index),
        then the nuisances in [0, 1] (clipped).
    :param image_size: 32 or 64.
    :param names: the attribute columns, :func:`attribute_names` of the labels (default: the
        binary :data:`ATTRIBUTE_NAMES`).
    :returns: ``uint8`` tensor ``[N, 3, image_size, image_size]``.
    """
    a, shape, colour = _read_factors(attributes, image_size, names)
    out = np.empty((a.shape[0], 3, image_size, image_size), dtype=np.uint8)
    for start in range(0, a.shape[0], _CHUNK):
        chunk = slice(start, start + _CHUNK)
        out[chunk] = _render_chunk(a[chunk], shape[chunk], colour[chunk], image_size)
    return torch.from_numpy(out)


def region_mask(
    attributes: Union[np.ndarray, torch.Tensor], image_size: int = 32, names: Sequence[str] = ATTRIBUTE_NAMES, region: str = "object"
) -> torch.Tensor:
    """Where :func:`render` draws a part of the image, from the same factors and geometry: each
    pixel's share ``[N, image_size, image_size]`` (float32 in [0, 1]; a pixel on the soft edge is
    partly covered) of the ``region``: ``"object"``, ``"stripe"`` (zero without one) or
    ``"background"`` (neither the object nor the stripe). :data:`LABEL_REGIONS` says which region
    each label changes."""
    if region not in REGIONS:
        raise ValueError(f"shapes regions are {', '.join(REGIONS)}, not {region!r}")
    a, shape, _ = _read_factors(attributes, image_size, names)
    out = np.empty((a.shape[0], image_size, image_size), dtype=np.float32)
    for start in range(0, a.shape[0], _CHUNK):
        chunk = slice(start, start + _CHUNK)
        if region == "stripe":
            out[chunk] = _stripe_coverage(a[chunk], image_size)
            continue
        covered = _object_coverage(a[chunk], shape[chunk], image_size)
        # the object stays below the stripe's band, so the two never overlap
        out[chunk] = covered if region == "object" else (1.0 - covered) * (1.0 - _stripe_coverage(a[chunk], image_size))
    return torch.from_numpy(out)


def sample_attributes(n: int, rng: np.random.Generator, names: Sequence[str] = ATTRIBUTE_NAMES) -> np.ndarray:
    """``n`` factor draws ``[n, A]``, columns as in ``names`` (:func:`attribute_names`): each label
    factor from one uniform ``u`` (binary: ``u < 0.5``; ``K`` classes: ``floor(K u)``), then
    Uniform(0, 1) nuisances."""
    uniform = rng.random((n, len(LABEL_NAMES)))
    nuisance = rng.random((n, len(NUISANCE_NAMES)))
    factors = (uniform < 0.5).astype(np.float32)
    for column, name in enumerate(names[: len(LABEL_NAMES)]):
        if name in CATEGORICAL_LABELS:
            num_classes = len(CATEGORICAL_LABELS[name][1])
            factors[:, column] = np.minimum(np.floor(uniform[:, column] * num_classes), num_classes - 1)
    return np.concatenate([factors, nuisance.astype(np.float32)], axis=1)


def _split(name: str, index: int, n: int, options: DataOptions, labels: tuple[str, ...]) -> ImageSet:
    rng = np.random.default_rng(np.random.SeedSequence(options.seed, spawn_key=(index,)))
    names = attribute_names(labels)
    attributes = torch.from_numpy(sample_attributes(n, rng, names))
    values = attributes[:, [names.index(label) for label in labels]].contiguous()
    return ImageSet(
        images=render(attributes, options.image_size, names),
        labels=values,
        mask=torch.ones_like(values, dtype=torch.bool),
        label_names=labels,
        ids=[f"{name}/{i}" for i in range(n)],
        attributes=attributes,
        num_classes=tuple(len(CATEGORICAL_LABELS[label][1]) if label in CATEGORICAL_LABELS else 2 for label in labels),
    )


@register_dataset("shapes")
def load(options: DataOptions) -> DataSplits:
    """Render the ``shapes`` splits: ``num_train`` (default 10000) train images and
    ``num_train // 5`` (default 2000) each for valid and test, deterministic in ``options.seed``.
    ``options.labels`` optionally picks labels from :data:`LABEL_NAMES` and the categorical
    ``shape`` and ``colour`` (see the module doc)."""
    if options.image_size not in IMAGE_SIZES:
        raise DataError(f"shapes renders 32 or 64 pixel images, not {options.image_size}; pass --image-size 32 or 64")
    if options.seed < 0:
        raise DataError(f"shapes needs a non-negative seed, got {options.seed}")
    if options.num_train is None:
        num_train, num_eval = DEFAULT_NUM_TRAIN, DEFAULT_NUM_EVAL
    elif options.num_train < 1:
        raise DataError(f"shapes needs at least 1 training image, got num_train={options.num_train}")
    else:
        num_train, num_eval = options.num_train, max(1, options.num_train // 5)
    # Before rendering: a huge --num-train is one line, not numpy's "Unable to allocate".
    pixels = 3 * options.image_size * options.image_size
    require(
        (num_train + 2 * num_eval) * (pixels + BYTES_PER_IMAGE_BESIDE_PIXELS),
        f"shapes with --num-train {num_train} ({num_train + 2 * num_eval} images of {pixels} bytes with validation and test)",
        "--num-train",
    )
    labels = select_labels(options.labels, LABEL_NAMES + tuple(CATEGORICAL_LABELS), LABEL_NAMES, "shapes")
    for label, (binary, classes) in CATEGORICAL_LABELS.items():
        if label in labels and binary in labels:
            raise DataError(f"shapes labels {binary} and {label} are the same factor ({label}: "
                            f"{', '.join(classes)}); pass one of them to --labels")
    names = attribute_names(labels)
    source = {
        "generator": "shapes",
        "seed": options.seed,
        "image_size": options.image_size,
        "attribute_names": list(names),
    }
    classes = {label: list(CATEGORICAL_LABELS[label][1]) for label in labels if label in CATEGORICAL_LABELS}
    if classes:
        source["classes"] = classes
    return DataSplits(
        train=_split("train", 0, num_train, options, labels),
        valid=_split("valid", 1, num_eval, options, labels),
        test=_split("test", 2, num_eval, options, labels),
        name="shapes",
        source=source,
        attribute_names=names,
        render=lambda attributes: render(attributes, options.image_size, names),
    )
