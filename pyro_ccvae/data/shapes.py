"""The built-in ``shapes`` data set: procedurally rendered colour images with known factors.

Each image shows one object (a square or a circle) on a plain background, and maybe a bar
along the top band. Six independent binary attributes, each Bernoulli(0.5), are the labels:

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

:func:`render` turns factor values into images; the loader uses it too, so analysis code can
render counterfactuals (flip one attribute, keep the nuisances) with the same ground truth.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

from . import register_dataset
from .base import DataError, DataOptions, DataSplits, ImageSet

#: the labels: binary attributes, in column order.
LABEL_NAMES: tuple[str, ...] = ("square", "red", "large", "right", "stripe", "dark_background")
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
#: the columns of ``ImageSet.attributes``: the labels first, then the nuisances.
ATTRIBUTE_NAMES: tuple[str, ...] = LABEL_NAMES + NUISANCE_NAMES
IMAGE_SIZES: tuple[int, ...] = (32, 64)
DEFAULT_NUM_TRAIN = 10000
DEFAULT_NUM_EVAL = 2000

# Geometry, in image units (the image is [0, 1] x [0, 1], y pointing down).
TOP_BAND = 0.1875  # the stripe's band: the top 6 of 32 (12 of 64) rows; the object stays below it
_STRIPE_TOP, _STRIPE_THICKNESS = 0.03, (0.06, 0.12)  # bar spans y in [top, top + thickness]
_STRIPE_X = (0.0625, 0.9375)
_OBJECT_TOP, _OBJECT_BOTTOM = 0.22, 0.97  # the object's extent in y
_SIZE_SMALL, _SIZE_LARGE = (0.10, 0.13), (0.18, 0.22)  # half-side of a square / radius of a circle
_HALF_MARGIN = 0.01  # gap between the object and its half's edges
# Colours (HSV, hue in turns).
_HUE_RED, _HUE_BLUE, _HUE_JITTER = 0.0, 0.62, 0.05
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


def _render_chunk(a: np.ndarray, size: int) -> np.ndarray:
    n = a.shape[0]
    square, red, stripe, dark = a[:, 0] > 0.5, a[:, 1] > 0.5, a[:, 4] > 0.5, a[:, 5] > 0.5
    cx, cy, r = _geometry(a)

    # object coverage [N, 1, H, W]: a box is separable; a disc uses a half-pixel soft edge
    box = _coverage(cy - r, cy + r, size)[:, :, None] * _coverage(cx - r, cx + r, size)[:, None, :]
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    dist = np.sqrt((grid[None, None, :] - cx[:, None, None]) ** 2 + (grid[None, :, None] - cy[:, None, None]) ** 2)
    disc = np.clip((r[:, None, None] - dist) * size + 0.5, 0.0, 1.0)
    alpha = np.where(square[:, None, None], box, disc)[:, None]

    # stripe coverage [N, 1, H, W]
    thick = _STRIPE_THICKNESS[0] + a[:, 13] * (_STRIPE_THICKNESS[1] - _STRIPE_THICKNESS[0])
    top = np.full(n, _STRIPE_TOP, dtype=np.float32)
    sy = _coverage(top, top + thick.astype(np.float32), size)
    sx = _coverage(np.full(n, _STRIPE_X[0], np.float32), np.full(n, _STRIPE_X[1], np.float32), size)
    s_alpha = (sy[:, :, None] * sx[:, None, :] * stripe[:, None, None])[:, None]

    # colours [N, 3, 1, 1]
    obj_hue = np.where(red, _HUE_RED, _HUE_BLUE) + (a[:, 9] - 0.5) * 2.0 * _HUE_JITTER
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


def render(attributes: Union[np.ndarray, torch.Tensor], image_size: int = 32) -> torch.Tensor:
    """Render images from factor values.

    :param attributes: ``[N, A]`` factors, columns as in :data:`ATTRIBUTE_NAMES`: the six
        binary attributes (read as ``> 0.5``), then the nuisances in [0, 1] (clipped).
    :param image_size: 32 or 64.
    :returns: ``uint8`` tensor ``[N, 3, image_size, image_size]``.
    """
    if image_size not in IMAGE_SIZES:
        raise DataError(f"shapes renders {' or '.join(map(str, IMAGE_SIZES))} pixel images, not {image_size}; "
                        f"pass --image-size 32 or 64")
    if isinstance(attributes, torch.Tensor):
        attributes = attributes.detach().cpu().numpy()
    a = np.asarray(attributes, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != len(ATTRIBUTE_NAMES):
        raise DataError(f"shapes attributes must be [N, {len(ATTRIBUTE_NAMES)}] ({', '.join(ATTRIBUTE_NAMES)}), "
                        f"got {list(a.shape)}")
    a = np.clip(a, 0.0, 1.0)
    out = np.empty((a.shape[0], 3, image_size, image_size), dtype=np.uint8)
    for start in range(0, a.shape[0], _CHUNK):
        out[start:start + _CHUNK] = _render_chunk(a[start:start + _CHUNK], image_size)
    return torch.from_numpy(out)


def sample_attributes(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` factor draws ``[n, A]``: Bernoulli(0.5) attributes, then Uniform(0, 1) nuisances."""
    binary = rng.random((n, len(LABEL_NAMES))) < 0.5
    nuisance = rng.random((n, len(NUISANCE_NAMES)))
    return np.concatenate([binary.astype(np.float32), nuisance.astype(np.float32)], axis=1)


def _split(name: str, index: int, n: int, options: DataOptions, label_index: list[int]) -> ImageSet:
    rng = np.random.default_rng(np.random.SeedSequence(options.seed, spawn_key=(index,)))
    attributes = torch.from_numpy(sample_attributes(n, rng))
    labels = attributes[:, label_index].contiguous()
    return ImageSet(
        images=render(attributes, options.image_size),
        labels=labels,
        mask=torch.ones_like(labels, dtype=torch.bool),
        label_names=tuple(LABEL_NAMES[i] for i in label_index),
        ids=[f"{name}/{i}" for i in range(n)],
        attributes=attributes,
    )


@register_dataset("shapes")
def load(options: DataOptions) -> DataSplits:
    """Render the ``shapes`` splits: ``num_train`` (default 10000) train images and
    ``num_train // 5`` (default 2000) each for valid and test, deterministic in ``options.seed``.
    ``options.labels`` optionally picks a subset of :data:`LABEL_NAMES`."""
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
    names = LABEL_NAMES if options.labels is None else tuple(options.labels)
    unknown = [x for x in names if x not in LABEL_NAMES]
    if unknown or not names:
        raise DataError(f"shapes has no label(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from: {', '.join(LABEL_NAMES)}")
    label_index = [LABEL_NAMES.index(x) for x in names]
    return DataSplits(
        train=_split("train", 0, num_train, options, label_index),
        valid=_split("valid", 1, num_eval, options, label_index),
        test=_split("test", 2, num_eval, options, label_index),
        name="shapes",
        source={
            "generator": "shapes",
            "seed": options.seed,
            "image_size": options.image_size,
            "attribute_names": list(ATTRIBUTE_NAMES),
        },
        attribute_names=ATTRIBUTE_NAMES,
        render=lambda attributes: render(attributes, options.image_size),
    )
