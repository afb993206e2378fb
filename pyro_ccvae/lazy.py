"""Names a package re-exports, and the entries of a registry, imported when first used (PEP 562's
module ``__getattr__``).

Importing ``pyro_ccvae``, ``pyro_ccvae.models`` or a model family's package then costs nothing:
the configuration and the command line's options (``ccvae-pyro --help``, one-line errors) are
read from light modules without importing torch and Pyro, which take seconds (docs/benchmarks.md, Start-up
time); ``from pyro_ccvae import CCVAEModel`` still works and imports what it needs.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the module ``package``: ``exports`` maps each
    re-exported name to the module that defines it (relative to ``package``, e.g. ``".model"``).
    A name is imported on first use and then kept on the module."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__


class LazyRegistry(MutableMapping):
    """name -> entry of one swappable family (models, data sets): the built-in entries, each
    registered by its own module when that module is imported on the name's first lookup, and any
    entry registered at run time (``registry[name] = entry``). Listing or testing the names
    imports nothing.

    :param package: the package the built-in modules' relative names are relative to.
    :param built_in: built-in name -> the module (e.g. ``".shapes"``) whose import registers it.
    """

    def __init__(self, package: str, built_in: dict[str, str]):
        self._package = package
        self._built_in = built_in
        self._entries: dict[str, object] = {}

    def __getitem__(self, name: str):
        if name not in self._entries and name in self._built_in:
            importlib.import_module(self._built_in[name], self._package)  # registers the entry
        return self._entries[name]

    def __setitem__(self, name: str, entry) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._built_in or name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._built_in, *self._entries]))

    def __len__(self) -> int:
        return len(set(self._built_in) | set(self._entries))
