"""``ccvae-pyro evaluate | traverse | generate | intervene | swap``.

Each command reads a run directory and writes figures (``RUN/figures``), metrics
(``RUN/metrics.json``) and ``RUN/report.html`` there: a thin wrapper over the Python API
(:mod:`pyro_ccvae.api`: ``api.load(RUN).write(task, ...)``); the work is in :mod:`pyro_ccvae.analysis`.

The library (and with it torch and Pyro) is imported inside the commands, once the options are
parsed and the run directory found: ``--help`` and a mistyped option or RUN answer at once.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional

import click

from pyro_ccvae.config import DataConfig, RunSection

from .errors import fail, one_line_errors, print_health_warnings
from .options import FINITE_FLOAT, NO_PROGRESS, THREADS, config_options


def refuse_missing_run(run_dir: Path) -> None:
    """A RUN that does not exist is refused before the library is imported (that takes seconds);
    anything else about it (a file, a name too long, an incomplete run) the library says."""
    try:
        os.stat(run_dir)
    except FileNotFoundError:
        fail(f"run directory {run_dir} does not exist; train one with `ccvae-pyro train --out {run_dir}`")
    except OSError:
        pass


def _run_command(function=None, *, needs_data: bool = True):
    """The RUN argument and the options every analysis command shares; loads the run (with its
    data unless ``needs_data`` is false)."""
    if function is None:
        return functools.partial(_run_command, needs_data=needs_data)

    @click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
    # The run's data options that may change since training (where the data lie now; default:
    # where they were), and the run options of this command (the seed of its random draws).
    @config_options(
        RunSection, DataConfig, exclude=[n for n in DataConfig.__dataclass_fields__ if n not in ("data_dir", "cache_dir")],
        helps={"seed": "Seed of this command's random draws (the data are the run's, drawn with the run's seed)."},
    )  # fmt: skip
    @THREADS
    @click.option("--trust-run", is_flag=True, help="Allow a run whose guide is an import path (module:attr): loading it runs that code.")
    @one_line_errors
    @functools.wraps(function)
    def wrapper(run_dir: Path, device: str, seed: int, threads: Optional[int], data_dir, cache_dir, trust_run, **options):
        refuse_missing_run(run_dir)
        import pyro
        import torch

        from pyro_ccvae import api
        from pyro_ccvae.data.images import progress_bars
        from pyro_ccvae.run_directory import ANALYSIS_METRICS

        if threads:
            torch.set_num_threads(threads)
        # --no-progress (evaluate's) also hides the bars of a data cache built while loading
        with progress_bars(not options.get("no_progress", False)):
            loaded = api.load(run_dir, device, data=needs_data, trust=trust_run, data_dir=data_dir, cache_dir=cache_dir)
            pyro.set_rng_seed(seed)
            written = function(loaded, **options)
        for path in written.figures:
            click.echo(f"wrote {path}")
        click.echo(f"metrics in {loaded.run.path / ANALYSIS_METRICS}; report: {written.report}")

    return wrapper


def print_evaluation(m: dict) -> None:
    """The terminal summary of ``evaluate``'s metrics: the lines of each section the model offered
    (:data:`pyro_ccvae.analysis.sections.SECTIONS`), one per section skipped (the family lacks the
    capability; ``evaluation.skipped`` says which), and the health warnings (on stderr)."""
    from pyro_ccvae.analysis.sections import terminal_lines

    for line in terminal_lines(m):
        click.echo(line)
    print_health_warnings(m["health"])


@click.command()
@click.option("--iw-samples", type=int, default=100, show_default=True, help="Importance samples K for log p(x).")
@click.option("--classifier", "classifier_dir", type=click.Path(path_type=Path), help="An independent classifier's directory (from train-classifier): adds the intervention, swap and generation metrics.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Test images per pass through the model.")
@click.option("--max-images", type=int, help="Use only the first N test images.")
@click.option("--gen-samples", type=int, default=1000, show_default=True, help="Generated images for the conditional-generation accuracy.")
@click.option("--attribute-epochs", type=int, default=10, show_default=True, help="Data with ground-truth factors (shapes), no --classifier: epochs of the ground-truth classifier that judges interventions (0: skip).")
@click.option("--fid-weights", type=click.Path(path_type=Path), help="torch-fidelity's Inception v3 weights, a file (nothing is downloaded; without it FID is skipped, saying where the file is published): adds FID (Table 4) of generated images, reconstructions and training images against the test images.")
@click.option("--fid-images", type=int, default=500, show_default=True, help="Images per set for FID (4 sets: test, generated, reconstructed, training). Inception v3 took 0.5 s per image on one busy CPU core (500 images, 2,000 passes: about 16 minutes); less on an idle core, far less on a GPU. FID grows as the count shrinks: compare FIDs of equal counts.")
@NO_PROGRESS
@_run_command
def evaluate(run, no_progress: bool, **options):
    """Metrics and figures of a trained RUN on its test split: accuracy and AUROC per label,
    importance-weighted log p(x) and log p(x, y), latent separation, reconstructions."""
    written = run.write("evaluate", progress=not no_progress, **options)
    print_evaluation(written.metrics)
    if written.dropped:
        click.echo(
            f"dropped the judged results of an earlier evaluation ({', '.join(written.dropped)}): this one had no judge; "
            "give --classifier DIR (or, on data with ground truth, --attribute-epochs N > 0) to judge again"
        )
    return written


@click.command()
@click.option("--labels", help="Comma-separated labels to traverse (default: all).")
@click.option("--steps", type=int, default=9, show_default=True, help="Images per traversal (a label of more than two classes: per leg between class means, or per edge of its triangle).")
@click.option("--extend", type=FINITE_FLOAT, default=1.0, show_default=True, help="How far past each prior mean to go, in prior standard deviations (binary labels).")
@click.option("--pairs", help="Label pairs for 2-D traversals, A:B,C:D (default: the first two of --labels; '' for none).")
@click.option("--images", type=int, default=4, show_default=True, help="Test images (rows) per 1-D traversal.")
@click.option("--image", type=int, help="Test image (index) of the 2-D traversals (default: the most visible reconstruction of the first 256).")
@_run_command
def traverse(run, **options):
    """Latent traversals of each characteristic z_c^i from the y=0 to the y=1 prior mean (Fig. 3);
    a label of 3 classes: the triangle between its class means, more classes: the path through
    them (Fig. 21)."""
    return run.write("traverse", **options)


@click.command()
@click.option("--labels", "label_specs", multiple=True, help="A label vector NAME=CLASS,... with class indices 0..K-1 (0|1 for a binary label; repeatable, or several separated by ';'); labels left out are drawn from p(y). Default: each label at each of its classes.")
@click.option("--samples", type=int, default=8, show_default=True, help="Images per row.")
@click.option("--rows", type=int, default=1, show_default=True, help="Rows (styles z_s) per label vector.")
@_run_command(needs_data=False)
def generate(run, **options):
    """Conditional generation: z_c ~ p(z_c | y), z_s ~ N(0, I) (Fig. 4)."""
    return run.write("generate", **options)


@click.command()
@click.option("--labels", help="Comma-separated labels to intervene on (default: all).")
@click.option("--images", type=int, default=8, show_default=True, help="Test images (rows).")
@click.option("--samples", type=int, default=32, show_default=True, help="Draws of z_c^i per diversity map.")
@click.option("--draws", type=int, default=8, show_default=True, help="Draws per class in the class-diversity grid of a label of more than two classes.")
@_run_command
def intervene(run, **options):
    """Switch each binary label of test images by resampling z_c^i ~ p(z_c^i | switched y_i), and
    set each label of more classes to each class (Fig. 11); diversity maps: the per-pixel variance
    over many such draws (Fig. 5); per class of a label of more classes, draws decoded with one
    image's z_s (Fig. 22)."""
    return run.write("intervene", **options)


@click.command()
@click.option("--images", type=int, default=6, show_default=True, help="Test images in the swap grid.")
@_run_command
def swap(run, **options):
    """Characteristic swaps: z_c of one test image decoded with z_s of another (Figs. 6-7)."""
    return run.write("swap", **options)
