"""Plain figures: image grids and matplotlib plots, written as PNG.

Matplotlib is used through :class:`matplotlib.figure.Figure` and the Agg canvas, never
``pyplot``: no global backend or figure state, so the library is safe to call from anywhere.

A figure is rendered in memory and written like every file of a run (:func:`~pyro_ccvae.checkpoint.atomic_write_bytes`):
to a temporary name, then renamed over the old one. A kill or a full disk mid-write leaves the
previous figure whole (never a 0-byte or truncated PNG the report would still show), and a
symbolic link in its place is replaced, never written through.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..checkpoint import atomic_write_bytes

PAD = 2  # pixels between grid cells
#: the colour map of :func:`heat_overlay` (and of its colour bar).
HEAT_MAP = "inferno"


def image_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """``images [N, C, H, W]`` in ``[0, 1]`` -> one RGB grid ``[3, H', W']``, ``nrow`` images per
    row, :data:`PAD` white pixels around each: the layout of ``torchvision.utils.make_grid``.

    Written here because importing torchvision (which imports ``torch._dynamo``) took about 2 s,
    a sixth of ``evaluate --max-images 500``."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:  # grey -> RGB, as make_grid does
        images = images.expand(-1, 3, -1, -1)
    n, channels, height, width = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = images.new_ones(channels, rows * (height + PAD) + PAD, cols * (width + PAD) + PAD)
    for k in range(n):
        top, left = PAD + (k // cols) * (height + PAD), PAD + (k % cols) * (width + PAD)
        grid[:, top : top + height, left : left + width] = images[k]
    return grid


def write_png(data: bytes, path: Path) -> Path:
    """Write the PNG ``data`` to ``path`` atomically (see the module's notes); a full disk or a
    file-system fault is a one-line error naming ``path``."""
    atomic_write_bytes(Path(path), data, hint="on that disk and run the command again")
    return Path(path)


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    png = io.BytesIO()
    fig.savefig(png, format="png", bbox_inches="tight")
    return write_png(png.getvalue(), path)


def save_labelled_grid(
    images: torch.Tensor,
    path: Path,
    row_labels: Optional[Sequence[str]] = None,
    col_labels: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    zoom: float = 2.0,
    colour_scale: Optional[tuple[float, str]] = None,
) -> Path:
    """Save ``images [R, K, C, H, W]`` as an ``R x K`` grid with row and column captions.

    :param colour_scale: ``(vmax, label)``: add a colour bar of :data:`HEAT_MAP` from 0 to ``vmax``
        (for cells made by :func:`heat_overlay`)."""
    rows, cols = images.shape[:2]
    height, width = images.shape[-2:]
    grid = image_grid(images.flatten(0, 1), nrow=cols)
    array = grid.permute(1, 2, 0).numpy()
    fig = _new_figure(array.shape[1] * zoom / 100 + 1.5, array.shape[0] * zoom / 100 + 0.8)
    ax = fig.add_subplot()
    ax.imshow(array, interpolation="nearest")
    ax.set_xticks([PAD + c * (width + PAD) + width / 2 for c in range(cols)] if col_labels else [])
    ax.set_yticks([PAD + r * (height + PAD) + height / 2 for r in range(rows)] if row_labels else [])
    if col_labels:
        ax.set_xticklabels(col_labels, rotation=45 if max(map(len, col_labels)) > 6 else 0, ha="center", fontsize=8)
        ax.xaxis.tick_top()
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_xlabel(title, fontsize=9)
    if colour_scale is not None:
        vmax, label = colour_scale
        scale = ScalarMappable(norm=Normalize(0.0, vmax), cmap=HEAT_MAP)
        bar = fig.colorbar(scale, ax=ax, fraction=0.035, pad=0.02)
        bar.set_label(label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return _save(fig, path)


def class_colours(num_classes: int) -> list:
    """One colour per class: matplotlib's ``tab10`` cycle (class 0 blue, class 1 orange, ...),
    ``viridis`` steps beyond 10 classes."""
    if num_classes <= 10:
        return [colormaps["tab10"](k) for k in range(num_classes)]
    return [colormaps["viridis"](k / (num_classes - 1)) for k in range(num_classes)]


def plot_densities(
    values: Sequence[Sequence[np.ndarray]],
    label_names: Sequence[str],
    path: Path,
    prior_locs: Optional[Sequence[np.ndarray]] = None,
    distances: Optional[Sequence[Optional[float]]] = None,
) -> Path:
    """One panel per label: histogram densities of a latent for each class ``y = 0, 1, ...``.

    :param values: per label, one sample per class.
    :param prior_locs: per label, the ``K_i`` conditional-prior means, drawn as dashed lines.
    :param distances: per label, a number for the panel's title: the Wasserstein distance of a
        binary label, the mean pairwise one of a label with more classes.
    """
    count = len(label_names)
    cols = min(count, 3)
    rows = -(-count // cols)
    top = max(len(v) for v in values)
    colours = class_colours(top)
    alpha = 0.45 if top <= 2 else 0.3  # many overlapping classes need more transparency
    fig = _new_figure(3.2 * cols, 2.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, name in enumerate(label_names):
        ax = axes[i // cols][i % cols]
        samples = values[i]
        both = np.concatenate(samples)
        bins = np.histogram_bin_edges(both, bins=30) if both.size and np.ptp(both) > 0 else 10
        for v, colour in zip(samples, colours):
            if v.size:
                ax.hist(v, bins=bins, density=True, histtype="stepfilled", alpha=alpha, color=colour)
        if prior_locs is not None:
            for loc, colour in zip(prior_locs[i], colours):
                ax.axvline(loc, color=colour, linestyle="--", linewidth=1)
        what = "W1" if len(samples) == 2 else "mean pairwise W1"
        title = name if distances is None or distances[i] is None else f"{name}  ({what} = {distances[i]:.2f})"
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("density", fontsize=8)
    for j in range(count, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    handles = [Patch(color=c, alpha=alpha, label=f"test images with y={k}") for k, c in enumerate(colours)]
    if prior_locs is not None:
        handles += [Line2D([], [], color=c, linestyle="--", label=f"prior mean, y={k}") for k, c in enumerate(colours)]
    fig.supxlabel("posterior mean of z_c^i (first dim)", fontsize=9)
    legend_rows = -(-len(handles) // 6) if top > 2 else 1
    fig.tight_layout(rect=(0, 0, 1, (0.93 if rows == 1 else 0.96) - 0.05 * (legend_rows - 1)))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles) if top <= 2 else 6, fontsize=8, frameon=False)
    return _save(fig, path)


def plot_matrix(
    matrix: np.ndarray, row_names: Sequence[str], col_names: Sequence[str], path: Path, title: str, colour_label: str,
    row_title: Optional[str] = None, col_title: Optional[str] = None, value_format: str = ".2f",
) -> Path:  # fmt: skip
    """A heat map of ``matrix`` with its values written in the cells (``value_format``, e.g.
    ``"d"`` for counts), and axis titles saying what the rows and columns are."""
    matrix = np.asarray(matrix, dtype=np.float64)
    size = 1.0 + 0.55 * max(len(col_names), 4)
    fig = _new_figure(size + 1.5, 0.55 * max(len(row_names), 4) + 1.5)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(len(col_names)), col_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_names)), row_names, fontsize=8)
    if matrix.size <= 400:
        top = np.nanmax(matrix) if np.isfinite(matrix).any() else 0.0
        for (r, c), value in np.ndenumerate(matrix):
            text = format(int(value) if value_format == "d" else value, value_format)
            ax.text(c, r, text, ha="center", va="center", fontsize=6, color="black" if value > 0.6 * top else "white")
    ax.set_title(title, fontsize=9)
    if row_title:
        ax.set_ylabel(row_title, fontsize=9)
    if col_title:
        ax.set_xlabel(col_title, fontsize=9)
    fig.colorbar(image, ax=ax, label=colour_label)
    fig.tight_layout()
    return _save(fig, path)


def heat_overlay(images: torch.Tensor, heat: torch.Tensor, vmax: float, alpha: float = 0.6) -> torch.Tensor:
    """Images ``[N, C, H, W]`` shown in grey with ``heat [N, H, W]`` (0..``vmax``) over them in
    the :data:`HEAT_MAP` colour map, opacity growing with the heat: ``[N, 3, H, W]`` in ``[0, 1]``."""
    grey = images.detach().float().cpu().mean(1, keepdim=True).expand(-1, 3, -1, -1)
    level = (heat.detach().float().cpu() / max(vmax, 1e-12)).clamp(0, 1)
    colour = torch.from_numpy(colormaps[HEAT_MAP](level.numpy())[..., :3]).float().permute(0, 3, 1, 2)
    weight = alpha * level.sqrt().unsqueeze(1)  # sqrt: faint variance stays visible
    return (1 - weight) * grey + weight * colour
