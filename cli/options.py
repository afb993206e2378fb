"""Click options generated from the config dataclasses' fields (:func:`pyro_ccvae.config.option`):
each option is declared once, in the library, with its default, help text, choices and group
(the heading a command's ``--help`` lists it under, :class:`GroupedCommand`)."""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, Iterable, Optional

import click

from pyro_ccvae.config import field_types, option_flag, option_name
from pyro_ccvae.fields import OPTION_GROUPS, check_group


class FiniteFloat(click.ParamType):
    """A float option that must be a number: ``nan`` and ``inf`` (which Python's ``float`` reads)
    are refused while parsing, naming the option, instead of reaching the objective or the
    optimiser and surfacing later as a misleading failure (a NaN loss that blames --lr)."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()


class GroupedOption(click.Option):
    """A click option that knows its group, a key of :data:`~pyro_ccvae.fields.OPTION_GROUPS`
    (``None``: listed under "Other options")."""

    def __init__(self, *args, group: Optional[str] = None, **kwargs):
        check_group(group)
        super().__init__(*args, **kwargs)
        self.group = group


def grouped_option(*declarations: str, group: str, **settings):
    """``click.option`` of a :class:`GroupedOption` in ``group``."""
    return click.option(*declarations, cls=GroupedOption, group=group, **settings)


#: the widest column of option names in grouped help (click's own limit); longer names get a line of their own.
TERM_COLUMN = 30


class GroupedCommand(click.Command):
    """A click command whose ``--help`` lists its options under one heading per group, in the
    order of :data:`~pyro_ccvae.fields.OPTION_GROUPS`; options without a group come last."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records: dict[Optional[str], list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                records.setdefault(getattr(param, "group", None), []).append(record)
        # one column of option names for every heading (write_dl would size each on its own)
        width = min(max(len(name) for rows in records.values() for name, _ in rows), TERM_COLUMN)
        for group, heading in [*OPTION_GROUPS.items(), (None, "Other options")]:
            if records.get(group):
                with formatter.section(heading):
                    formatter.write_dl([(name.ljust(width), text) for name, text in records[group]], col_max=TERM_COLUMN)


#: options of the command line itself, not of a config.
THREADS = grouped_option("--threads", type=int, group="execution", help="CPU threads for torch (default: torch's choice).")
NO_PROGRESS = grouped_option("--no-progress", is_flag=True, group="execution", help="No progress bars.")


def _label_list(ctx, param, value):
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _name_values(ctx, param, values):
    """Repeated ``NAME=VALUE`` -> ``{NAME: VALUE}`` (strings; the library types them)."""
    pairs = {}
    for item in values or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}")
        pairs[name.strip()] = value
    return pairs


def _as_str(ctx, param, value):
    return str(value) if value is not None else None


def _as_int(ctx, param, value):
    return int(value) if value is not None else None


def _base_type(kind: Any) -> Any:
    """``Optional[X]`` -> ``X``."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if typing.get_origin(kind) is typing.Union and len(args) == 1 else kind


def click_option(f: dataclasses.Field, kind: Any, default: Any = dataclasses.MISSING, help: Optional[str] = None):
    """The click option of one config field (``kind``: its resolved type; ``help``: this
    command's help text, instead of the field's)."""
    meta, base = f.metadata, _base_type(kind)
    default = f.default if default is dataclasses.MISSING else default
    declaration = meta.get("flag") or "--" + f.name.replace("_", "-")
    name = option_name(f)
    settings: dict[str, Any] = {"help": help or meta.get("help") or None, "cls": GroupedOption, "group": meta.get("group")}
    if base is bool:
        if "/" in declaration:
            settings.update(default=default, show_default=True)
        else:
            settings.update(is_flag=True)
    elif typing.get_origin(base) is list:
        settings.update(callback=_label_list)
    elif base is dict or typing.get_origin(base) is dict:
        settings.update(multiple=True, callback=_name_values, metavar="NAME=VALUE")
    elif meta.get("path"):
        settings.update(type=click.Path(file_okay=False, path_type=Path), callback=_as_str)
    elif meta.get("choices") is not None:
        choices = [str(c) for c in (meta["choices"]() if callable(meta["choices"]) else meta["choices"])]
        settings.update(type=click.Choice(choices), callback=_as_int if base is int else None)
        if default is not None:
            settings.update(default=str(default), show_default=True)
    else:
        settings.update(type=FINITE_FLOAT if base is float else base)
        if default is not None:
            settings.update(default=default, show_default=True)
    return click.option(declaration, name, **settings)


def config_options(*classes: type, exclude: Iterable[str] = (), defaults: Optional[dict] = None, helps: Optional[dict] = None):
    """Decorator: the options of every field of ``classes`` (config dataclasses), named by
    :func:`~pyro_ccvae.config.option_name` (a name two classes share, such as every model
    family's ``--model``, is declared once); ``exclude`` leaves some out, ``defaults`` overrides
    some defaults and ``helps`` some help texts (what an option means to this command)."""
    exclude, defaults, helps = set(exclude), defaults or {}, helps or {}
    chosen, seen = [], set()
    for cls in classes:
        types = field_types(cls)
        for f in dataclasses.fields(cls):
            name = option_name(f)
            if f.metadata.get("cli", True) and name not in exclude and name not in seen:  # first declaration wins
                seen.add(name)
                chosen.append(click_option(f, types[f.name], defaults.get(name, dataclasses.MISSING), helps.get(name)))

    unknown = sorted(set(helps) - seen)
    if unknown:
        raise ValueError(f"help given for {unknown[0]!r}, which is not an option of {', '.join(c.__name__ for c in classes)}")

    def decorate(command):
        for option in reversed(chosen):
            command = option(command)
        return command

    return decorate


def flag_used(f: dataclasses.Field, value: Any) -> str:
    """The flag that gave a field ``value`` (for a boolean pair ``--a/--b``, the side that was used)."""
    declaration = f.metadata.get("flag") or ""
    if "/" in declaration and isinstance(value, bool):
        on, off = declaration.split("/")
        return on if value else off
    return option_flag(f)


def given_on_command_line(options: Iterable[str]) -> list[str]:
    """The names among ``options`` that the user set on the command line (not defaults)."""
    context = click.get_current_context()
    return [name for name in options if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]


def prepare(options: dict) -> bool:
    """Apply ``--threads`` (and remove it from ``options``); returns whether to show progress."""
    threads = options.pop("threads")
    if threads:
        import torch  # here, not at the top: parsing and --help do not import torch

        torch.set_num_threads(threads)
    return not options.pop("no_progress")
