"""``ccvae-pyro train-classifier``: the independent judge of edited and generated images.

Its options come from :class:`~pyro_ccvae.analysis.classifier.ClassifierConfig`, which lives
beside the classifier's code and imports torch: unlike the other commands, this one's ``--help``
and option errors take the seconds torch takes to import.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from pyro_ccvae.analysis.classifier import ClassifierConfig, train_classifier as train_classifier_run

from .errors import one_line_errors
from .options import NO_PROGRESS, THREADS, config_options, given_on_command_line, prepare


@click.command("train-classifier")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Where the classifier goes.")
@click.option("--resume", is_flag=True, help="Continue the training in --out from its checkpoint (up to --epochs).")
@config_options(ClassifierConfig)
@THREADS
@NO_PROGRESS
@one_line_errors
def train_classifier(out: Path, resume: bool, **options) -> None:
    """Train the independent CNN classifier (fully supervised on the observed labels: binary
    cross-entropy for binary labels, cross-entropy for labels of more classes) that judges
    edited and generated images: `evaluate RUN --classifier DIR`."""
    from pyro_ccvae.data.images import progress_bars

    progress = prepare(options)
    explicit = given_on_command_line(options)  # a resumed training refuses a change to one that cannot change
    with progress_bars(progress):  # --no-progress hides the data cache's bars too
        summary = train_classifier_run(ClassifierConfig(**options), out, progress=progress, resume=resume, explicit=explicit)
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    click.echo(f"classifier saved in {out}")

