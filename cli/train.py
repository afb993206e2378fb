"""``ccvae-pyro train``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.elbo import JENSEN_ESTIMATORS
from pyro_ccvae.likelihoods import LIKELIHOODS
from pyro_ccvae.health import describe as describe_health
from pyro_ccvae.training import train as train_run

from .errors import one_line_errors, print_health_warnings
from .options import data_options, prepare

_DEFAULTS = TrainConfig()


@click.command()
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
@click.option("--likelihood", type=click.Choice(list(LIKELIHOODS)), help="p(x|z); default: the data set's (see the README). The paper: laplace.")
@click.option("--classifier-weight", type=float, default=_DEFAULTS.classifier_weight, show_default=True, help="alpha, the weight of log q(y_o|x); the paper: 1.")
@click.option("--detach-weight-denominator/--weight-denominator-gradient", default=_DEFAULTS.detach_weight_denominator, show_default=True, help="Stop the gradient through q(y_o|x) in w's denominator; the paper keeps it.")
@click.option("--prior-lr-factor", type=float, default=_DEFAULTS.prior_lr_factor, show_default=True, help="The conditional prior and a learned likelihood scale learn at lr times this; the paper: 1.")
@data_options
@one_line_errors
def train(out: Path, resume: bool, reparameterised_classifier: bool, **options) -> None:
    """Train a CCVAE with SVI into the run directory --out."""
    # Options set on the command line, as config field -> flag: a resumed run checks them.
    given = click.core.ParameterSource.COMMANDLINE
    context = click.get_current_context()
    explicit = {name: "--" + name.replace("_", "-") for name in options if context.get_parameter_source(name) is given}
    if context.get_parameter_source("reparameterised_classifier") is given:
        explicit["detach_classifier_input"] = "--reparameterised-classifier"
    progress = prepare(options)
    config = TrainConfig(detach_classifier_input=not reparameterised_classifier, **options)
    explicit = {name: flag for name, flag in explicit.items() if hasattr(config, name)}
    summary = train_run(config, out, resume=resume, progress=progress, explicit=explicit)
    health = summary["health"]
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "health"}, indent=2))
    click.echo(f"health ({health['split']} split): {describe_health(health)}")
    print_health_warnings(health)
    click.echo(f"run saved in {out} (health checks in summary.json)")
