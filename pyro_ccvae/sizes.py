"""What a command's sizes ask of the machine, checked before anything is allocated.

An absurd size (``--k-samples 10000000``, ``traverse --steps 100000``, ``generate --samples
1000000``, ``--num-train 1000000000``) would otherwise end in the allocator's error (``can't
allocate memory: you tried to allocate 15360000000 bytes``) or a machine that swaps for
minutes. Each command estimates the memory its sizes need from the sizes alone (``K x batch x
labels x z_char_dim`` floats for the CCVAE's K samples, ``images x C x H x W`` for decoded
images, the pixels of a figure) and compares it with the memory the machine has free: on the
CPU, ``MemAvailable`` of ``/proc/meminfo`` (or ``os.sysconf``), lowered to a cgroup's or
``ulimit -v``'s limit; on CUDA, ``torch.cuda.mem_get_info``. What cannot fit is refused in one
line (:class:`SizeError`) with the estimate and the option to lower. The estimates are
deliberately rough (the factors below were measured on this project's networks) and only refuse
what is far out of reach; an out-of-memory error that still happens (:func:`out_of_memory_says`)
is one line naming the option to lower too.

Time is estimated where a size makes a command run for hours (``evaluate --iw-samples``):
:func:`check_duration` warns beyond :data:`WARN_SECONDS` and refuses beyond :data:`REFUSE_SECONDS`.
"""
from __future__ import annotations

import logging
import os
import resource
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .errors import UserError

log = logging.getLogger(__name__)

FLOAT_BYTES = 4
#: peak memory of decoding (no gradients), in floats per output pixel (``H x W``): the
#: transposed convolutions' feature maps and their ReLUs; measured 13-18 at 64 and 32 px.
DECODE_FLOATS_PER_PIXEL = 20
#: memory of a training step per image (forward and backward of the encoder and decoder), in
#: floats per pixel (``H x W``); measured 40 at 64 px, 76 at 32 px with one-off costs included.
TRAIN_FLOATS_PER_PIXEL = 48
#: memory of rendering a labelled figure (the grid, matplotlib's resampled image and canvas, the
#: PNG), in bytes per pixel of the rendered figure; measured 60.
CANVAS_BYTES_PER_PIXEL = 64
#: the largest side of a figure matplotlib's Agg canvas draws (its own limit, 2^23 pixels).
MAX_FIGURE_SIDE = 1 << 23
#: the white pixels between grid cells and the zoom of a labelled grid (as
#: :data:`pyro_ccvae.analysis.figures.PAD` and ``save_labelled_grid``'s ``zoom``; a test checks).
GRID_PAD, GRID_ZOOM = 2, 2.0
#: a command expected to run longer than this says so before it starts ...
WARN_SECONDS = 10 * 60
#: ... and one expected to run longer than this is refused.
REFUSE_SECONDS = 24 * 60 * 60


class SizeError(UserError):
    """A size the machine cannot serve; the message is one line with the estimate and the option to lower."""


# --- what the machine has -------------------------------------------------------------------


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # no /proc (macOS) or an old kernel: free physical pages
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read_int(path: str) -> Optional[int]:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_room() -> Optional[int]:
    """What this process's cgroup (a container, a batch job) still lets it use, if it is limited."""
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:  # v1 says "no limit" with a huge number
            return max(cap - used, 0)
    return None


def _address_space_room() -> Optional[int]:
    """What ``ulimit -v`` still lets this process map, if it is set."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return None
    return max(soft - size, 0)


def host_available_bytes() -> Optional[int]:
    """Memory free for new allocations on the host, or ``None`` where it cannot be told."""
    known = [room for room in (_meminfo_available(), _cgroup_room(), _address_space_room()) if room is not None]
    return min(known) if known else None


def available_bytes(device=None) -> Optional[int]:
    """Memory free for new tensors on ``device`` (default: the host), or ``None`` where unknown.
    On CUDA: the device's free memory plus what PyTorch's caching allocator holds unused."""
    kind = getattr(device, "type", None) or (str(device).split(":")[0] if device is not None else "cpu")
    if kind == "cpu":
        return host_available_bytes()
    if kind == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return None  # meta, mps, ...: nothing to compare with


def _where(device) -> str:
    kind = getattr(device, "type", None) or (str(device).split(":")[0] if device is not None else "cpu")
    return "on the CPU" if kind == "cpu" else f"on {device}"


# --- words --------------------------------------------------------------------------------


def format_bytes(count: float) -> str:
    """``15360000000`` -> ``"15.4 GB"`` (decimal units, as ``df -H`` and the allocator's bytes)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.3g} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def format_seconds(seconds: float) -> str:
    """``200000`` -> ``"2.3 days"``."""
    for unit, length in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= length:
            return f"{seconds / length:.2g} {unit}" if seconds / length < 10 else f"{seconds / length:.0f} {unit}"
    return f"{seconds:.0f} seconds"


# --- checks -------------------------------------------------------------------------------


def require(needed: float, what: str, lower: str, device=None, available: Optional[int] = None) -> None:
    """Refuse (:class:`SizeError`) when ``what`` needs more than the memory free on ``device``.

    :param needed: the estimate, in bytes.
    :param what: what needs it, in words (``"a training step with --k-samples 10000000"``).
    :param lower: the option(s) to lower, in words (``"--k-samples"``).
    :param available: the free memory (default: :func:`available_bytes` of ``device``).
    """
    free = available_bytes(device) if available is None else available
    if free is not None and needed > free:
        raise SizeError(
            f"{what} needs about {format_bytes(needed)} of memory, more than the {format_bytes(free)} "
            f"available {_where(device)}; lower {lower}"
        )


def decoded_bytes(count: int, channels: int, image_size: int) -> int:
    """Memory of decoding ``count`` images at once and keeping them (float32)."""
    pixels = image_size * image_size
    return count * pixels * FLOAT_BYTES * (channels + DECODE_FLOATS_PER_PIXEL)


def figure_pixels(rows: int, cols: int, image_size: int) -> tuple[int, int]:
    """(width, height) in pixels of a labelled grid of ``rows x cols`` images (captions left out)."""
    cell = image_size + GRID_PAD
    return int((cols * cell + GRID_PAD) * GRID_ZOOM), int((rows * cell + GRID_PAD) * GRID_ZOOM)


def require_figure(rows: int, cols: int, channels: int, image_size: int, what: str, lower: str, device=None, decoded: Optional[int] = None) -> None:
    """Refuse a labelled grid figure of ``rows x cols`` images that no canvas can draw or the
    machine cannot hold: its decoded images (``decoded`` at once, default every cell) on
    ``device``, and its rendering on the host.

    :param what: the figure, in words (``"traverse's figure of square (4 x 100000 images)"``).
    :param lower: the option(s) to lower."""
    width, height = figure_pixels(rows, cols, image_size)
    if max(width, height) > MAX_FIGURE_SIDE:
        side, count = ("wide", cols) if width >= height else ("high", rows)
        most = int((MAX_FIGURE_SIDE / GRID_ZOOM - GRID_PAD) // (image_size + GRID_PAD))
        raise SizeError(
            f"{what} would be {max(width, height):,} pixels {side} ({count:,} images of {image_size} px), more than "
            f"the {MAX_FIGURE_SIDE:,} a figure can have; lower {lower} (at most {most:,} images a {'row' if side == 'wide' else 'column'})"
        )
    cells = rows * cols
    on_device = decoded_bytes(cells if decoded is None else decoded, channels, image_size)
    kept = cells * channels * image_size * image_size * FLOAT_BYTES  # the cells, moved to the host to draw
    rendering = width * height * CANVAS_BYTES_PER_PIXEL + kept
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    if kind == "cpu":
        require(on_device + rendering, what, lower, device)
    else:
        require(on_device, what, lower, device)
        require(rendering, what, lower)


def training_step_bytes(
    batch: int, image_size: int, channels: int, num_labels: int, max_classes: int, z_char_dim: int, k_samples: int = 0
) -> tuple[int, int]:
    """(the images' part, the K samples' part) of a training step's memory, in bytes, for a
    batch of ``batch`` points.

    The K samples of the CCVAE's ``q(y_o|x)`` estimate (``log_q_labels``) are ``[K, L, B, d_c]``:
    the noise, its scaled and shifted copies, and per class the classifier's logits and
    log-probabilities, all kept for the backward pass."""
    images = batch * image_size * image_size * FLOAT_BYTES * (channels + TRAIN_FLOATS_PER_PIXEL)
    per_sample_floats = 3 * z_char_dim + 4 * max_classes + 4
    samples = k_samples * batch * num_labels * per_sample_floats * FLOAT_BYTES
    return images, samples


def check_duration(seconds: float, what: str, lower: str) -> None:
    """Warn when ``what`` is expected to take longer than :data:`WARN_SECONDS`; refuse
    (:class:`SizeError`) beyond :data:`REFUSE_SECONDS`."""
    if seconds > REFUSE_SECONDS:
        raise SizeError(
            f"{what} would take about {format_seconds(seconds)} at the speed measured on this machine "
            f"(more than the {format_seconds(REFUSE_SECONDS)} allowed); lower {lower}"
        )
    if seconds > WARN_SECONDS:
        log.warning("%s will take about %s at the speed measured on this machine; lower %s to shorten it",
                    what, format_seconds(seconds), lower)  # fmt: skip


# --- out of memory all the same -----------------------------------------------------------


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed: CUDA's ``OutOfMemoryError``, the CPU
    allocator's ``RuntimeError`` (``can't allocate memory``), or Python's and NumPy's ``MemoryError``."""
    if isinstance(error, MemoryError):
        return True
    import torch

    if isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


@contextmanager
def out_of_memory_says(what: str, lower: str, device=None):
    """Turn an out-of-memory error inside the block into a one-line :class:`SizeError`:
    ``what`` ran out of memory, lower ``lower``."""
    try:
        yield
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        raise SizeError(f"{what} ran out of memory {_where(device)}; lower {lower}") from None
