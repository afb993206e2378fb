"""``ccvae-pyro train-classifier``: the independent judge of edited and generated images.

Its options come from :class:`~pyro_ccvae.analysis.classifier_config.ClassifierConfig`, which
imports neither torch nor Pyro; the classifier's code is imported once the options are parsed, so
that ``--help`` and a mistyped option answer at once (docs/benchmarks.md, Start-up time).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from pyro_ccvae.analysis.classifier_config import ClassifierConfig

from .errors import one_line_errors
from .options import NO_PROGRESS, THREADS, GroupedCommand, config_options, given_on_command_line, grouped_option, prepare

#: what the run options inherited from a training run's config mean to the judge.
HELPS = {
    "seed": "Seed for the data (rendering, splits; a training run's --seed gives the same) and the judge's draws: "
    "its validation hold-out, initial weights, batch order and the GP head's subsample.",
}


@click.command("train-classifier", cls=GroupedCommand)
@grouped_option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, group="run", help="Where the classifier goes.")
@grouped_option("--resume", is_flag=True, group="run", help="Continue the training in --out from its checkpoint (up to --epochs).")
@config_options(ClassifierConfig, helps=HELPS)
@THREADS
@NO_PROGRESS
@one_line_errors
def train_classifier(out: Path, resume: bool, **options) -> None:
    """Train the independent CNN classifier (fully supervised on the observed labels: binary
    cross-entropy for binary labels, cross-entropy for labels of more classes) that judges
    edited and generated images: `evaluate RUN --classifier DIR`."""
    from pyro_ccvae.analysis.classifier import train_classifier as train_classifier_run
    from pyro_ccvae.data.images import progress_bars

    progress = prepare(options)
    explicit = given_on_command_line(options)  # a resumed training refuses a change to one that cannot change
    with progress_bars(progress):  # --no-progress hides the data cache's bars too
        summary = train_classifier_run(ClassifierConfig(**options), out, progress=progress, resume=resume, explicit=explicit)
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    click.echo(f"classifier saved in {out}")

