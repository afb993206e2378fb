"""Click options shared by the commands that load a data set (``train``, ``train-classifier``)."""
from __future__ import annotations

from pathlib import Path

import click
import torch

from pyro_ccvae.config import DataConfig
from pyro_ccvae.data import DATASETS

_DEFAULTS = DataConfig()


def _label_list(ctx, param, value):
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


_OPTIONS = [
    click.option("--dataset", type=click.Choice(sorted(DATASETS)), default=_DEFAULTS.dataset, show_default=True),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder holding the data set."),
    click.option("--image-size", type=click.Choice(["32", "64"]), help="Default: 32 for shapes, digits and the MNISTs; 64 otherwise."),
    click.option("--labels", callback=_label_list, help="Comma-separated label names (default: the paper's set)."),
    click.option("--uncertain", default=_DEFAULTS.uncertain, show_default=True, help="CheXpert -1 labels: ignore, zeros, ones, or per label e.g. Edema=ones,*=zeros."),
    click.option("--blank", type=click.Choice(["zeros", "ignore"]), default=_DEFAULTS.blank, show_default=True, help="CheXpert blank labels."),
    click.option("--views", type=click.Choice(["frontal", "lateral", "all"]), default=_DEFAULTS.views, show_default=True, help="CheXpert views."),
    click.option("--center-crop", is_flag=True, help="CelebA: crop the face before resizing."),
    click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Where decoded image caches go."),
    click.option("--skip-bad-images", is_flag=True, help="Skip unreadable images (counted in the log) instead of stopping."),
    click.option("--num-train", type=int, help="Built-in data sets: number of training images."),
    click.option("--device", default=_DEFAULTS.device, show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True),
    click.option("--threads", type=int, help="CPU threads for torch (default: torch's choice)."),
    click.option("--no-progress", is_flag=True, help="No progress bars."),
]  # fmt: skip


def data_options(command):
    """Add the data set options; the command receives them already typed for :class:`DataConfig`
    (paths as strings, image size as int) plus ``no_progress``; ``--threads`` is applied here."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def prepare(options: dict) -> bool:
    """Apply ``--threads`` and type the data options in place; returns whether to show progress."""
    threads = options.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    for key in ("data_dir", "cache_dir"):
        options[key] = str(options[key]) if options[key] else None
    options["image_size"] = int(options["image_size"]) if options["image_size"] else None
    return not options.pop("no_progress")
