"""``ccvae-pyro train``.

Its options are built from the config dataclasses, which import neither torch nor Pyro; the
training library is imported once the options have been parsed and checked, so that ``--help``
and a mistyped option answer at once (docs/benchmarks.md, Start-up time).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from pyro_ccvae.config import TrainConfig, option_name
from pyro_ccvae.errors import UserError
from pyro_ccvae.models import MODELS, config_class

from .errors import one_line_errors, print_health_warnings
from .options import NO_PROGRESS, THREADS, GroupedCommand, config_options, flag_used, given_on_command_line, grouped_option, prepare

_SECTIONS = TrainConfig.section_classes()
#: every model family's settings (each family's options are offered; those of the family chosen with --model are used).
_MODEL_SECTIONS = [config_class(name) for name in MODELS]


@click.command(cls=GroupedCommand)
@grouped_option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/ccvae"), show_default=True, group="run", help="The run directory.")
@grouped_option("--resume", is_flag=True, group="run", help="Continue the run in --out up to --epochs.")
@config_options(_SECTIONS["optimisation"], *_MODEL_SECTIONS, *(_SECTIONS[name] for name in ("guide", "data", "run", "execution")))
@THREADS
@NO_PROGRESS
@one_line_errors
def train(out: Path, resume: bool, **options) -> None:
    """Train a model with SVI into the run directory --out.

    Under torchrun (`torchrun --nproc_per_node N -m pyro_ccvae_cli train ...`) the N processes
    train data-parallel; --batch-size is the global batch, and rank 0 writes --out and reports."""
    progress = prepare(options)
    # Families share option names (--z-style-dim, --likelihood, ...) whose click defaults are
    # the first family's: the chosen family's own defaults apply unless an option was given.
    given = set(given_on_command_line(options))
    foreign = sorted(given - TrainConfig.option_names(options["model"]))
    if foreign:
        raise UserError(f"--{foreign[0].replace('_', '-')} is not an option of --model {options['model']}")
    if {"sup_frac", "sup_schedule"} <= given:
        raise UserError("--sup-frac and --sup-schedule cannot be used together: the schedule's stages give the fractions")
    own = {option_name(f) for f in dataclasses.fields(config_class(options["model"]))} - {"model"}
    options = {
        k: v for k, v in options.items()
        if k in TrainConfig.option_names(options["model"]) and (k in given or k not in own)
    }  # fmt: skip
    config = TrainConfig.from_options(**options)
    # Options set on the command line, as option name -> the flag that set it: a resumed run checks them.
    fields = config.fields_by_option()
    explicit = {name: flag_used(fields[name][1], options[name]) for name in given_on_command_line(options)}
    from pyro_ccvae.data.images import progress_bars
    from pyro_ccvae.distributed import World
    from pyro_ccvae.health import describe as describe_health
    from pyro_ccvae.training import Trainer

    world = World.from_environment()
    with progress_bars(progress):  # --no-progress hides the data cache's bars too
        trainer = Trainer(config, out, resume=resume, progress=progress, explicit=explicit, world=world)
    if world.is_main:
        try:
            click.echo(header(trainer, resume), err=True)
        except BaseException:
            trainer.close()  # what fit() does when it ends: release the run directory
            raise
    summary = trainer.fit()
    if not world.is_main:
        return  # rank 0 reports
    health = summary["health"]
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "health"}, indent=2))
    click.echo(f"health ({health['split']} split): {describe_health(health)}")
    print_health_warnings(health)
    click.echo(f"run saved in {out} (health checks in summary.json)")


def header(trainer, resume: bool) -> str:
    """What a run trains on, where and into which folder, said before the first epoch (the data
    may have taken a while to load, and a mistyped --labels or --sup-frac shows here)."""
    config, data = trainer.config, trainer.data
    info = config.data.info
    size = f"{info['image_size']}x{info['image_size']}, {info['channels']} channel(s)"
    if all(k == 2 for k in config.num_classes):
        labels = ", ".join(info["label_names"]) + " (all binary)"
    else:
        labels = ", ".join(f"{name} ({'binary' if k == 2 else f'{k} classes'})" for name, k in zip(info["label_names"], config.num_classes))
    epochs = config.optimisation.epochs
    if resume:
        where = f"resumed after epoch {trainer.position.epoch}, training to epoch {epochs}"
    else:
        where = f"new, {epochs} epoch(s)"
    processes = f" x {trainer.world.size} processes" if trainer.world.size > 1 else ""
    return "\n".join([
        f"run: {trainer.run_dir} ({where})",
        f"data: {config.data.dataset}, {size}; {len(data.train)} training images, {len(trainer.labelled)} labelled "
        f"({supervision(trainer)}), {len(data.valid)} validation, {len(data.test)} test",
        f"labels: {labels}",
        # the guide's class: a baseline's own guide, though its config says meanfield
        f"model: {config.model.name}, guide {type(trainer.guide).__name__}; device {trainer.device}{processes}",
    ])  # fmt: skip


def supervision(trainer) -> str:
    """``--sup-frac F``, or the schedule and the labelled points of each of its stages."""
    optimisation = trainer.config.optimisation
    if optimisation.sup_schedule is None:
        return f"--sup-frac {optimisation.sup_frac:g}"
    counts = "/".join(str(len(subset)) for subset in trainer.stage_labelled)
    return f"--sup-schedule {optimisation.sup_schedule}: {counts} labelled per stage"
