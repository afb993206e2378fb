"""Decoding and resizing image files once, for the caches of :mod:`pyro_ccvae.data.cache`.

Decoding uses PIL. JPEGs are decoded at a reduced scale where that loses nothing the target size
keeps (libjpeg's DCT scaling, ``Image.draft``): a 320x390 CheXpert image bound for 64x64 is
decoded at 80x98, about four times faster than a full decode, and the full-size CheXpert (about
2800x2300) some fifty times faster. The final resize is PIL's bilinear filter, which
antialiases when it shrinks.
"""
from __future__ import annotations

import contextvars
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Collection, Iterator, Optional, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

#: a missing file; any other failure to decode is recorded as ``"corrupt: <reason>"``.
MISSING = "missing"

#: whether building a cache shows progress bars (on stderr); see :func:`progress_bars`.
_SHOW_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("pyro_ccvae_cache_progress", default=True)


@contextmanager
def progress_bars(show: bool) -> Iterator[None]:
    """Show or hide the bars of cache building (decoding, resizing) inside the block: the command
    line's ``--no-progress`` hides them with the training and analysis bars. A setting of the
    caller's context rather than a loader option, because every loader builds its cache alike and
    the loaders are called from training, analysis and the judge's training."""
    token = _SHOW_PROGRESS.set(show)
    try:
        yield
    finally:
        _SHOW_PROGRESS.reset(token)


def show_progress() -> bool:
    """Whether the bars of cache building show here (see :func:`progress_bars`)."""
    return _SHOW_PROGRESS.get()


# Below this many images the thread pool costs more than it saves.
_POOL_MIN = 64
_BLOCK = 1024


#: PIL modes of 16-bit grayscale (PNG, TIFF); older PIL opens 16-bit PNGs as 32-bit "I".
_WIDE_GRAYSCALE = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_8_bit(img: Image.Image) -> Image.Image:
    """A 16-bit grayscale image as 8-bit ``L``: PIL's own conversion clips at 255 (all white)."""
    wide = np.asarray(img).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), mode="L")


def decode_image(path: Path, size: int, channels: int, crop: Optional[int] = None) -> np.ndarray:
    """Decode one image file and resize it to ``size x size``.

    :param path: the image file.
    :param size: the side of the square output.
    :param channels: 1 (grayscale) or 3 (RGB).
    :param crop: if given, first crop the central ``crop x crop`` square (or the largest central
        square, for an image smaller than ``crop``). Otherwise the whole image is resized,
        aspect ratio not kept.
    :return: ``uint8`` array ``[channels, size, size]``.
    :raises OSError: the file is missing or cannot be decoded.
    """
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as img:
        width, height = img.size
        if crop:
            side = min(crop, width, height)
            left, top = (width - side) / 2, (height - side) / 2
            box = (left, top, left + side, top + side)
        else:
            box = (0.0, 0.0, float(width), float(height))
        if img.format == "JPEG":
            # Ask libjpeg for the smallest scale at which the box still covers >= size pixels.
            bw, bh = box[2] - box[0], box[3] - box[1]
            img.draft(mode, (math.ceil(width * size / bw), math.ceil(height * size / bh)))
            sx, sy = img.size[0] / width, img.size[1] / height
            box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        if img.mode in _WIDE_GRAYSCALE:
            img = to_8_bit(img)
        img = img.convert(mode)
        img = img.resize((size, size), Image.Resampling.BILINEAR, box=box)
    array = np.asarray(img, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """Resize one already decoded grayscale ``uint8`` image ``[H, W]`` to ``[1, size, size]``."""
    if image.shape == (size, size):
        return image[None]
    img = Image.fromarray(np.ascontiguousarray(image), mode="L")
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)[None]


def missing_files(paths: Sequence[Path]) -> list[int]:
    """Indices of the ``paths`` that are not files."""
    return [i for i, p in enumerate(paths) if not os.path.isfile(p)]


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"corrupt: {text}"


def decode_into(
    paths: Sequence[Path],
    out: np.ndarray,
    *,
    channels: int,
    crop: Optional[int] = None,
    desc: str = "decoding images",
    skip: Collection[int] = (),
    workers: Optional[int] = None,
) -> dict[int, str]:
    """Decode ``paths[i]`` into ``out[i]`` for every ``i``, with a progress bar on stderr.

    PIL releases the GIL while it decodes and resizes, so a thread pool uses every core without
    the cost and fork-safety questions of worker processes.

    :param out: ``uint8`` array ``[N, channels, size, size]`` (e.g. the cache's memory map).
    :param skip: indices not to decode (known bad); their rows stay as they are.
    :return: ``{index: reason}`` for the images that could not be decoded (their rows stay 0).
    """
    size = out.shape[-1]
    bad: dict[int, str] = {}

    def one(i: int) -> Optional[str]:
        try:
            # looked up at call time, so that tests can replace it
            out[i] = decode_image(paths[i], size, channels, crop)
        except FileNotFoundError:
            return MISSING
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return _reason(error)
        return None

    todo = [i for i in range(len(paths)) if i not in skip] if skip else range(len(paths))
    n = len(todo)
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    with tqdm(total=n, desc=desc, unit="img", file=sys.stderr, mininterval=1.0, leave=False, disable=not show_progress()) as bar:
        if workers <= 1 or n < _POOL_MIN:
            for i in todo:
                reason = one(i)
                if reason:
                    bad[i] = reason
                bar.update(1)
        else:
            with ThreadPoolExecutor(workers) as pool:
                for start in range(0, n, _BLOCK):
                    block = todo[start : start + _BLOCK]
                    for i, reason in zip(block, pool.map(one, block)):
                        if reason:
                            bad[i] = reason
                    bar.update(len(block))
    return bad
