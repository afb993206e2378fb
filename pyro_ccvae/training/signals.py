"""Stop requests: Ctrl-C, SIGTERM (a scheduler's) and SIGUSR1 stop training at the next read point
(never inside an optimiser step) after saving the position, on every process; a second Ctrl-C
stops at once. What a stopped run says, and how it is continued."""
from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

from ..distributed import CollectiveWatchdog, World
from .errors import TrainingInterrupted

#: signals that stop training at the next read point, after saving the position.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
#: under torchrun a Ctrl-C arrives twice (from the terminal and forwarded by torchrun): a second
#: one within this many seconds is the same key press, not the "stop at once" of a second press.
SAME_SIGNAL_SECONDS = 1.0


def resume_command(run_dir: Path, epochs: int, world: World) -> str:
    """The command that continues the run in ``run_dir`` to epoch ``epochs``."""
    args = f"train --out {run_dir} --resume --epochs {epochs}"
    if not world.launched:
        return f"ccvae-pyro {args}"
    per_node = os.environ.get("LOCAL_WORLD_SIZE", str(world.size))
    return f"torchrun --nproc_per_node {per_node} -m pyro_ccvae_cli {args}"


class StopRequests:
    """The stop signal this process received while training (:meth:`catching`), if any.

    :param kept: the checkpoint the run directory holds, in words (what a blocked process says it leaves).
    :param resume_command: the command that continues the run.
    """

    def __init__(self, world: World, kept: Callable[[], str], resume_command: str):
        self.world, self.kept, self.resume_command = world, kept, resume_command
        #: the first stop signal received, ``None`` while there is none.
        self.signal: Optional[int] = None

    @contextmanager
    def catching(self):
        """Handle the stop signals (in the main thread; elsewhere Python cannot)."""
        self.signal, first_at = None, [0.0]
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            now = time.monotonic()
            if self.signal is None:
                self.signal, first_at[0] = signum, now
            elif signum == signal.SIGINT and not (self.world.launched and now - first_at[0] < SAME_SIGNAL_SECONDS):
                raise KeyboardInterrupt

        previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
        try:
            if self.world.distributed:  # a signal while blocked in a collective (a stopped peer) still ends this process
                with CollectiveWatchdog(self.world, self._blocked_exit_message):
                    yield
            else:
                yield
        finally:
            for number, old in previous.items():
                signal.signal(number, old)

    def _blocked_exit_message(self, signal_number: int, waited: float) -> str:
        """What a process says when a stop signal ends it inside a collective that does not end."""
        return (
            f"{signal.Signals(signal_number).name} while {self.world.describe()} had waited {waited:.0f} s for the other "
            "processes, which did not answer (one of them is stopped, e.g. by SIGSTOP or a debugger, or hung): "
            f"exiting without saving the batches since the last checkpoint; {self.kept()}; once every "
            f"process can run, continue with `{self.resume_command}`"
        )

    def interrupted(self, epoch: int, batch: int, run_dir: Path) -> TrainingInterrupted:
        """The stop of a request at epoch ``epoch`` (0-based), ``batch`` batches into it, saved in ``run_dir``."""
        got = self.signal
        why = signal.Signals(got).name if got is not None else "another process's signal"
        return TrainingInterrupted(
            f"interrupted ({why}) at epoch {epoch + 1}, batch {batch}; saved to {run_dir}; continue with `{self.resume_command}`",
            got if got is not None else signal.SIGTERM,
        )
