"""What stops training: an error, or a stop request; and how every process meets an error alike."""
from __future__ import annotations

import signal

from ..distributed import PeerFailed, World


class TrainingError(RuntimeError):
    """Training cannot go on; the message is one line (the last good checkpoint is kept)."""


class TrainingInterrupted(RuntimeError):
    """A stop request (Ctrl-C, SIGTERM or SIGUSR1): the position was saved and the run can be resumed.

    :param signal_number: the signal that asked for it (the exit status is 128 plus it).
    """

    def __init__(self, message: str, signal_number: int = signal.SIGINT):
        super().__init__(message)
        self.signal_number = int(signal_number)


def shared(world: World, error: Exception) -> Exception:
    """An error every process meets at the same point: rank 0 raises (and reports) it, the
    others a :class:`~pyro_ccvae.distributed.PeerFailed` that the command line keeps quiet."""
    return error if world.is_main else PeerFailed(str(error))
