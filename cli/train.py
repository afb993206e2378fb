"""``ccvae-pyro train``."""
from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.data import DATASETS
from pyro_ccvae.elbo import JENSEN_ESTIMATORS
from pyro_ccvae.model import LIKELIHOODS
from pyro_ccvae.training import train as train_run

from .errors import one_line_errors

_DEFAULTS = TrainConfig()


def _label_list(ctx, param, value):
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


@click.command()
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default=_DEFAULTS.dataset, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder holding the data set.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/ccvae"), show_default=True, help="The run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out up to --epochs.")
@click.option("--sup-frac", type=float, default=_DEFAULTS.sup_frac, show_default=True, help="Fraction of training points whose labels are used (0 to 1).")
@click.option("--epochs", type=int, default=_DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True)
@click.option("--lr", type=float, default=_DEFAULTS.lr, show_default=True)
@click.option("--k-samples", type=int, default=_DEFAULTS.k_samples, show_default=True, help="Samples of z_c for q(y|x).")
@click.option("--z-style-dim", type=int, default=_DEFAULTS.z_style_dim, show_default=True)
@click.option("--z-char-dim", type=int, default=_DEFAULTS.z_char_dim, show_default=True, help="Latent dims per label.")
@click.option("--guide", default=_DEFAULTS.guide, show_default=True, help="meanfield, lowrank, or module:attr.")
@click.option("--jensen", type=click.Choice(JENSEN_ESTIMATORS), default=_DEFAULTS.jensen, show_default=True, help="Unsupervised term: exact sum over y, or the authors' one-sample estimate.")
@click.option("--reparameterised-classifier", is_flag=True, help="Ablation: let the main term's q(y|z_c) see the reparameterised z_c (the paper stops its gradient).")
@click.option("--likelihood", type=click.Choice(sorted(LIKELIHOODS)), default=_DEFAULTS.likelihood, show_default=True)
@click.option("--device", default=_DEFAULTS.device, show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True)
@click.option("--threads", type=int, help="CPU threads for torch (default: torch's choice).")
@click.option("--image-size", type=click.Choice(["32", "64"]), help="Default: 32 for shapes/mnist, 64 otherwise.")
@click.option("--labels", callback=_label_list, help="Comma-separated label names (default: the paper's set).")
@click.option("--uncertain", default=_DEFAULTS.uncertain, show_default=True, help="CheXpert -1 labels: ignore, zeros, ones, or per label e.g. Edema=ones,*=zeros.")
@click.option("--blank", type=click.Choice(["zeros", "ignore"]), default=_DEFAULTS.blank, show_default=True, help="CheXpert blank labels.")
@click.option("--views", type=click.Choice(["frontal", "lateral", "all"]), default=_DEFAULTS.views, show_default=True, help="CheXpert views.")
@click.option("--center-crop", is_flag=True, help="CelebA: crop the face before resizing.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Where decoded image caches go.")
@click.option("--skip-bad-images", is_flag=True, help="Skip unreadable images (counted in the log) instead of stopping.")
@click.option("--num-train", type=int, help="Built-in data sets: number of training images.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@one_line_errors
def train(out: Path, resume: bool, threads, no_progress: bool, reparameterised_classifier: bool, **options) -> None:
    """Train a CCVAE with SVI into the run directory --out."""
    if threads:
        torch.set_num_threads(threads)
    for key in ("data_dir", "cache_dir"):
        options[key] = str(options[key]) if options[key] else None
    options["image_size"] = int(options["image_size"]) if options["image_size"] else None
    config = TrainConfig(detach_classifier_input=not reparameterised_classifier, **options)
    summary = train_run(config, out, resume=resume, progress=not no_progress)
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"run saved in {out}")
