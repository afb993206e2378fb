"""Helpers for config dataclasses whose fields are the options: each field carries its
command-line declaration (help text, group, flag, choices) in its metadata, so an option is declared once."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, field
from typing import Any, Optional

from .errors import UserError

#: the groups ``--help`` lists options under, in its order, with their headings: what part of a
#: run an option sets, or, for an option that one model family or one data set alone reads, which.
OPTION_GROUPS = {
    "run": "Run",
    "model": "Model",
    "objective": "Objective (CCVAE only)",
    "m2": "M2 only",
    "diva": "DIVA only",
    "mvae": "MVAE only",
    "guide": "Guide",
    "data": "Data set",
    "chexpert": "CheXpert only",
    "celeba": "CelebA only",
    "optimisation": "Optimisation",
    "judge": "Judge's uncertainty (GP head)",
    "execution": "Execution",
}


def option(default: Any = MISSING, *, help: str = "", group: Optional[str] = None, flag: Optional[str] = None, choices=None,
           path: bool = False, cli: bool = True, resume: bool = False, default_factory: Any = MISSING):  # fmt: skip
    """A config field with its command-line declaration in ``metadata``.

    :param help: the option's help text.
    :param group: the key in :data:`OPTION_GROUPS` of the heading ``--help`` lists it under.
    :param flag: the click declaration when it is not ``--field-name`` (e.g. ``"--guide"``, or
        ``"--a/--b"`` for a boolean pair); the option's name (and its key in
        :meth:`TrainConfig.from_options`) then follows the flag.
    :param choices: the allowed values (shown by ``--help`` and checked by click).
    :param path: a folder path (stored as an absolute string).
    :param cli: ``False`` for fields that are filled in, not chosen (``data.info``).
    :param resume: a resumed run may change it (where it runs, where its data lie, how long).
    """
    check_group(group)
    metadata = {"help": help, "group": group, "flag": flag, "choices": choices, "path": path, "cli": cli, "resume": resume}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def check_group(group: Optional[str]) -> None:
    """A ``ValueError`` for a group that is not a key of :data:`OPTION_GROUPS` (``None`` passes)."""
    if group is not None and group not in OPTION_GROUPS:
        raise ValueError(f"unknown option group {group!r}; known: {', '.join(OPTION_GROUPS)}")


def option_name(f: dataclasses.Field) -> str:
    """The flat name of a config field: its flag's name (``--guide`` -> ``guide``) or its own."""
    flag = f.metadata.get("flag")
    if flag:
        return flag.split("/")[0].lstrip("-").replace("-", "_")
    return f.name


def option_flag(f: dataclasses.Field) -> str:
    """The flag that sets a field, for messages (``--sup-frac``)."""
    return (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split("/")[0]


def field_types(cls) -> dict[str, Any]:
    """The resolved type of every field of a config dataclass."""
    return typing.get_type_hints(cls)


def check_positive(config, *names: str) -> None:
    """A one-line error for the first option among ``names`` that is not positive (``None``, an
    option left to a default filled in later, passes)."""
    for name in names:
        if getattr(config, name) is not None and getattr(config, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")
