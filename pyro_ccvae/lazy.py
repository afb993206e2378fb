"""Names a package re-exports, imported when first used (PEP 562's module ``__getattr__``).

Importing ``pyro_ccvae``, ``pyro_ccvae.models`` or a model family's package then costs nothing:
the configuration and the command line's options (``ccvae-pyro --help``, one-line errors) are
read from light modules without importing torch and Pyro, which take seconds (README: Start-up
time); ``from pyro_ccvae import CCVAEModel`` still works and imports what it needs.
"""
from __future__ import annotations

import importlib
import sys
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
