"""Model families, found by name in :data:`MODELS` (``--model NAME``); see :mod:`.base`.

Each family is a folder (``models/ccvae/``: its config, family, model, objective, sites, guides
and representation) that registers itself here; the shared networks (:mod:`pyro_ccvae.nets`) and
likelihoods (:mod:`pyro_ccvae.likelihoods`) are injected into its modules.

=========  =====================================================================================
``ccvae``  the CCVAE (Joy et al., 2021), the default
``m2``     M2 (Kingma et al., 2014): labels beside ``z`` in the latent space
``diva``   the modified DIVA of the CCVAE paper's appendix C.4 (after Ilse et al., 2019)
``mvae``   the MVAE (Wu & Goodman, 2018): a product of experts over image and labels
=========  =====================================================================================

A built-in family is imported when it is first looked up in :data:`MODELS`, and its settings
(:func:`config_class`, read by the configuration and the command line) without its model code:
a family's ``config.py`` imports neither torch nor Pyro, so ``ccvae-pyro --help`` and the
one-line errors of option parsing do not either (README: Start-up time).

The baselines share :mod:`.labels` (categorical label helpers) and :mod:`.common` (what a
family with its own guide needs).
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..lazy import lazy_exports

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


class Families(Mapping):
    """name -> :class:`~.base.ModelFamily`: the built-in families (each imported on first
    lookup) and any registered with :func:`register_model`. Listing the names imports nothing."""

    def __init__(self, built_in: dict[str, tuple[str, str, str]]):
        self._built_in = built_in
        self._families: dict[str, ModelFamily] = {}

    def __getitem__(self, name: str) -> "ModelFamily":
        if name not in self._families and name in self._built_in:
            importlib.import_module(self._built_in[name][0], __name__)  # registers the family
        return self._families[name]

    def __contains__(self, name: object) -> bool:
        return name in self._built_in or name in self._families

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._built_in, *self._families]))

    def __len__(self) -> int:
        return len(set(self._built_in) | set(self._families))

    def register(self, family: "ModelFamily") -> None:
        self._families[family.name] = family

    def config_class(self, name: str) -> type:
        """The settings dataclass of the family ``name`` (a built-in one's without importing its model code)."""
        if name in self._built_in and name not in self._families:
            _, module, attribute = self._built_in[name]
            return getattr(importlib.import_module(module, __name__), attribute)
        return self[name].config_class


#: name -> family; the built-in ones are imported when first looked up.
MODELS = Families(BUILT_IN)


def register_model(family: "ModelFamily") -> "ModelFamily":
    """Make ``family`` available as ``--model family.name``."""
    MODELS.register(family)
    return family


def get_family(name: str) -> "ModelFamily":
    """The family called ``name``; a one-line :class:`ValueError` naming the known ones if there is none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def config_class(name: str) -> type:
    """The settings dataclass (the ``model`` section of a run's config) of the family ``name``; a
    one-line :class:`ValueError` naming the known ones if there is none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS.config_class(name)


__getattr__, __dir__ = lazy_exports(
    __name__, {name: ".base" for name in ("CAPABILITIES", "CapabilityError", "ModelFamily", "Representation")}
)
__all__ = [
    "BUILT_IN", "CAPABILITIES", "MODELS", "CapabilityError", "ModelFamily", "Representation", "config_class", "get_family",
    "register_model",
]  # fmt: skip
