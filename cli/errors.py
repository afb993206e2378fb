"""Known failures become one line on stderr and a non-zero exit, never a traceback; warnings one line each."""
from __future__ import annotations

import functools

import click

from pyro_ccvae.checkpoint import CheckpointError, DiskFullError, is_disk_full
from pyro_ccvae.data import DataError
from pyro_ccvae.distributed import DistributedError, PeerFailed, World
from pyro_ccvae.guides import GuideError
from pyro_ccvae.run import RunError
from pyro_ccvae.tracking import TrackingError
from pyro_ccvae.training import TrainingError, TrainingInterrupted

#: exceptions whose message already says what is wrong and how to fix it.
USER_ERRORS = (
    DataError, GuideError, RunError, TrainingError, CheckpointError, DiskFullError, DistributedError, TrackingError,
    ValueError, FileNotFoundError,
)  # fmt: skip


def one_line_errors(command):
    """Wrap a click command so that user-facing errors print ``error: ...`` and exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TrainingInterrupted as e:
            if World.from_environment().is_main:  # under torchrun, every process stops; rank 0 says so
                click.echo(str(e), err=True)
            raise SystemExit(128 + e.signal_number) from None
        except PeerFailed as e:
            # Another process failed and reports it itself; rank 0 also reports what every process met.
            if not World.from_environment().is_main:
                raise SystemExit(1) from None
            fail(str(e))
        except USER_ERRORS as e:
            fail(str(e) or type(e).__name__)
        except OSError as e:
            if not is_disk_full(e):
                raise
            where = f" writing {e.filename}" if e.filename else ""
            fail(f"no space left on device{where}; free some space or write elsewhere (--out, --cache-dir)")

    return wrapper


def print_health_warnings(health: dict) -> None:
    """Each warning of a health check (:mod:`pyro_ccvae.health`) as one ``warning: ...`` line on stderr."""
    for warning in health.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)


def fail(message: str):
    """Print ``error: message`` on one line and exit 1."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    raise SystemExit(1)
