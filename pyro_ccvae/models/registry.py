"""The registry of model families: :data:`MODELS` finds a family by name (``--model NAME``).

A built-in family is imported when it is first looked up, and its settings (:func:`config_class`,
read by the configuration and the command line) without its model code: a family's ``config.py``
imports neither torch nor Pyro, so ``ccvae-pyro --help`` and the one-line errors of option
parsing do not either (docs/benchmarks.md, Start-up time).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UserError
from ..lazy import LazyRegistry

if TYPE_CHECKING:
    from .base import ModelFamily

#: the built-in families, in ``--model`` order (the default first): name -> (the module that
#: defines and registers the family, the module and class of its settings).
BUILT_IN = {
    "ccvae": (".ccvae.family", ".ccvae.config", "CCVAEConfig"),
    "m2": (".m2.family", ".m2.config", "M2Config"),
    "diva": (".diva.family", ".diva.config", "DIVAConfig"),
    "mvae": (".mvae.family", ".mvae.config", "MVAEConfig"),
}


class Families(LazyRegistry):
    """name -> :class:`~.base.ModelFamily`: the built-in families (each imported on first
    lookup) and any registered with :func:`register_model`. Listing the names imports nothing."""

    def __init__(self, built_in: dict[str, tuple[str, str, str]]):
        super().__init__(__package__, {name: module for name, (module, _, _) in built_in.items()})
        self._settings = {name: (module, attribute) for name, (_, module, attribute) in built_in.items()}

    def config_class(self, name: str) -> type:
        """The settings dataclass of the family ``name`` (a built-in one's without importing its model code)."""
        if name in self._settings and name not in self._entries:
            module, attribute = self._settings[name]
            return getattr(importlib.import_module(module, __package__), attribute)
        return self[name].config_class


#: name -> family; the built-in ones are imported when first looked up.
MODELS = Families(BUILT_IN)


def register_model(family: "ModelFamily") -> "ModelFamily":
    """Make ``family`` available as ``--model family.name``."""
    MODELS[family.name] = family
    return family


def get_family(name: str) -> "ModelFamily":
    """The family called ``name``; a one-line :class:`~pyro_ccvae.errors.UserError` naming the known ones if there is none."""
    _check_known(name)
    return MODELS[name]


def config_class(name: str) -> type:
    """The settings dataclass (the ``model`` section of a run's config) of the family ``name``; a
    one-line :class:`~pyro_ccvae.errors.UserError` naming the known ones if there is none."""
    _check_known(name)
    return MODELS.config_class(name)


def _check_known(name: str) -> None:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
