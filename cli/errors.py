"""Known failures become one line on stderr and a non-zero exit, never a traceback; warnings one line each.

A known failure is one of the library's user errors (:class:`pyro_ccvae.errors.UserError` and its
subclasses: bad input, whose message says what is wrong and how to fix it), one of the library's
own run-time errors below, or a missing file; anything else is a fault of the code and keeps its
traceback. The run-time errors' classes are looked up among the modules already imported, not
imported here: an error of a class can only be raised once its module is loaded, and importing
them all would import torch into every command, ``--help`` and option errors included.
"""
from __future__ import annotations

import errno
import functools
import sys

import click

from pyro_ccvae.errors import UserError

#: (module, class) of the library's run-time errors (not :class:`UserError`: not bad input) whose
#: message already says what went wrong and what to do.
KNOWN_ERRORS = (
    ("pyro_ccvae.training", "TrainingError"),
    ("pyro_ccvae.checkpoint", "CheckpointError"),
    ("pyro_ccvae.checkpoint", "DiskFullError"),
    ("pyro_ccvae.distributed", "DistributedError"),
    ("pyro_ccvae.tracking", "TrackingError"),
)
#: a training run stopped by a signal (exits with 128 + the signal's number).
INTERRUPTED = ("pyro_ccvae.training", "TrainingInterrupted")
#: another process of a torchrun launch failed (it reports its own failure).
PEER_FAILED = ("pyro_ccvae.distributed", "PeerFailed")


def _loaded(module: str, name: str) -> tuple[type, ...]:
    """The class ``module.name`` if ``module`` is imported, else nothing (no error of it can exist)."""
    loaded = sys.modules.get(module)
    return (getattr(loaded, name),) if loaded is not None else ()


def _is_main_process() -> bool:
    """Rank 0 under torchrun (or the only process): the one that reports what every process met.
    Asked only after training started, when the library is imported anyway."""
    from pyro_ccvae.distributed import World

    return World.from_environment().is_main


def one_line_errors(command):
    """Wrap a click command so that user-facing errors print ``error: ...`` and exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Exception as error:
            if isinstance(error, _loaded(*INTERRUPTED)):
                if _is_main_process():  # under torchrun, every process stops; rank 0 says so
                    click.echo(str(error), err=True)
                raise SystemExit(128 + error.signal_number) from None
            if isinstance(error, _loaded(*PEER_FAILED)):
                # Another process failed and reports it itself; rank 0 also reports what every process met.
                if not _is_main_process():
                    raise SystemExit(1) from None
                fail(str(error))
            known = (UserError, FileNotFoundError, *(kind for spec in KNOWN_ERRORS for kind in _loaded(*spec)))
            if isinstance(error, known):
                fail(str(error) or type(error).__name__)
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                where = f" writing {error.filename}" if error.filename else ""
                fail(f"no space left on device{where}; free some space or write elsewhere (--out, --cache-dir)")
            raise

    return wrapper


def print_health_warnings(health: dict) -> None:
    """Each warning of a health check (:mod:`pyro_ccvae.health`) as one ``warning: ...`` line on stderr."""
    for warning in health.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)


def fail(message: str):
    """Print ``error: message`` on one line and exit 1."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    raise SystemExit(1)
