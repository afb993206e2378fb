"""Data-parallel training with ``torch.distributed``: one process per device, launched by torchrun::

    torchrun --nproc_per_node N -m pyro_ccvae_cli train --out RUN ...

What the processes share, and how (:class:`~pyro_ccvae.training.Trainer` does this with a :class:`World`):

- **The batch.** ``--batch-size`` is the *global* batch. Every process draws the same epoch
  order, cuts it into the same batches, and takes the ``rank``-th of ``N`` near-equal shards of
  each batch (``torch.tensor_split``): the shards are disjoint, every point is visited once per
  epoch, and a batch holds the same points whatever ``N`` is. A last batch with fewer points than
  processes leaves some shards empty; those processes join the step with no gradient.
- **The gradient.** Every family's objective is a Pyro ELBO whose loss is a *sum* over the
  batch's points. Each process computes the loss of its shard and its gradients
  (``differentiable_loss`` and ``backward``, as ``SVI`` does in ``loss_and_grads``); one
  ``all_reduce`` then sums the gradients and the losses over the processes, which gives the
  gradient of the whole batch's loss that one process would compute (equivalently: each shard's
  loss carries the factor ``N`` of a 1/N subsample and the gradients are averaged, as
  DistributedDataParallel averages them). Every process then takes the same optimiser step on the
  same parameters. :class:`~torch.nn.parallel.DistributedDataParallel` is not used because it
  reduces inside a module's ``forward``/``backward`` hooks, while Pyro's model and guide are
  called by the ELBO, return sample sites rather than a loss, and may use a parameter in one step
  and not the next; reducing after ``loss_and_grads`` and before the optimiser works for any
  model family and any guide, at the cost of not overlapping the reduction with ``backward``
  (one flat all-reduce of a few megabytes per step).
- **Agreement.** Anything that stops training is decided on values every process shares: the
  summed loss (the NaN check), the stop requests of signals (summed into the same all-reduce),
  and the outcome of what only rank 0 does (reading and writing the run directory, validation);
  a failure on one process stops every process with its one-line message (:meth:`World.agree`).
- **Randomness.** Every process builds the model from the same seed, and rank 0's initial
  parameters are broadcast. After set-up each process draws from its own stream, seeded from
  ``(seed, rank)`` (:func:`rank_seed`); a checkpoint holds every process's RNG state, so a run
  resumed with the same number of processes continues exactly. ``--noise keyed``
  (:mod:`pyro_ccvae.noise`) makes the latents' noise independent of the number of processes.
- **Files.** Rank 0 alone reads and writes the run directory (config, checkpoint, metrics,
  TensorBoard events) and shows progress; the other processes get what it read through
  collectives, so the directory needs to be on rank 0's file system only.
"""
from __future__ import annotations

import logging
import math
import os
import select
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, TypeVar

import numpy as np
import pyro
import torch
import torch.distributed as dist
from pyro import poutine
from pyro.infer import SVI
from pyro.infer.util import zero_grads

from .devices import DeviceError, resolve_device

T = TypeVar("T")
log = logging.getLogger(__name__)

#: how long a process waits in a collective for the others (rank 0 validating, saving or building
#: the data cache, a slow disk) before giving up; :data:`TIMEOUT_VARIABLE` sets another.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
#: the environment variable that sets the collective timeout, in seconds (e.g. 300 on a machine
#: where the data cache is built already and nothing waits long).
TIMEOUT_VARIABLE = "PYRO_CCVAE_COLLECTIVE_TIMEOUT"
#: a process that has waited this long in one collective says so (once), naming the timeout.
WAIT_WARNING_SECONDS = 120.0
#: a stop signal that arrives while this process waits in a collective that then goes on this long
#: ends the process (a stopped or hung peer would keep it there until the timeout); shorter than
#: the 30 s torchrun waits after forwarding a SIGTERM before it kills its workers.
SIGNAL_GRACE_SECONDS = 20.0

#: when this process entered the collective it is waiting in (``time.monotonic()``), or ``None``.
_waiting_since: Optional[float] = None


class DistributedError(RuntimeError):
    """A launch that cannot work, or a failure of another process; the message is one line."""


class PeerFailed(DistributedError):
    """Another process of the run stopped with an error (which that process reports); the message is one line."""


def _one_line(error: BaseException) -> str:
    return " ".join((str(error) or type(error).__name__).split())


def collective_timeout(environ: Mapping[str, str] = os.environ) -> timedelta:
    """The collective timeout: :data:`TIMEOUT_VARIABLE` in seconds if set, else :data:`COLLECTIVE_TIMEOUT`."""
    text = environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return COLLECTIVE_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise DistributedError(f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds above 0; set it to e.g. 600, or unset it for 30 minutes")
    return timedelta(seconds=seconds)


def _describe_seconds(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds:g} s"


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s own random stream, derived from the run's ``seed``
    (numpy's ``SeedSequence``: streams of different ranks and seeds do not overlap in practice)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint32)[0])


@dataclass(frozen=True)
class World:
    """The processes that train one run together: this one is ``rank`` of ``size``, on the
    node's device ``local_rank``. ``World()`` is a single process; :meth:`from_environment`
    reads what torchrun sets.

    Every collective below is a no-op (or the obvious value) in a single process.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    #: started by torchrun (or another launcher that sets its variables), even with one process.
    launched: bool = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "World":
        """The world that torchrun describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a single
        process when ``WORLD_SIZE`` is not set."""
        if "WORLD_SIZE" not in environ:
            return cls()
        try:
            size, rank = int(environ["WORLD_SIZE"]), int(environ["RANK"])
            local_rank = int(environ.get("LOCAL_RANK", rank))
        except (KeyError, ValueError):
            raise DistributedError(
                "WORLD_SIZE is set but RANK is missing or not a number; launch several processes with "
                "`torchrun --nproc_per_node N -m pyro_ccvae_cli train ...`, or unset WORLD_SIZE for one"
            ) from None
        if not 0 <= rank < size:
            raise DistributedError(f"RANK={rank} is not in [0, WORLD_SIZE={size}); launch with torchrun")
        return cls(rank=rank, size=size, local_rank=local_rank, launched=True)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reads and writes the run directory and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def describe(self) -> str:
        return f"process {self.rank} of {self.size}"

    # --- set-up ---------------------------------------------------------------------------

    def device(self, spec: str) -> torch.device:
        """The device of this process for ``--device spec``: with several processes, ``auto`` and
        ``cuda`` mean this node's GPU ``LOCAL_RANK`` (one GPU per process)."""
        device = resolve_device(spec)
        if not self.distributed or device.type != "cuda":
            return device
        if device.index is not None:
            raise DeviceError(
                f"--device {spec} names one GPU, but under torchrun every process uses the GPU of its LOCAL_RANK; "
                "pass --device cuda (or auto), and CUDA_VISIBLE_DEVICES to choose the GPUs"
            )
        if self.local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"process {self.rank} has LOCAL_RANK {self.local_rank}, but this node has {torch.cuda.device_count()} GPU(s); "
                "start at most that many processes per node (--nproc_per_node)"
            )
        device = torch.device("cuda", self.local_rank)
        torch.cuda.set_device(device)
        return device

    def join(self, device: torch.device) -> bool:
        """Join the process group (NCCL on CUDA, gloo on the CPU) from torchrun's ``MASTER_ADDR``
        and ``MASTER_PORT``; returns whether this call created it (and so should :meth:`leave` it).
        A group that the caller initialised already is used as it is."""
        if not self.distributed or dist.is_initialized():
            return False
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=self.rank, world_size=self.size, timeout=collective_timeout())
        return True

    @staticmethod
    def leave() -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    # --- collectives ----------------------------------------------------------------------

    def _check_group(self) -> None:
        if dist.get_world_size() != self.size:
            raise DistributedError(
                f"the process group has {dist.get_world_size()} processes, but this world has {self.size}"
            )

    @contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        """Around a collective: mark this process as waiting (for :class:`CollectiveWatchdog`),
        and turn the backend's failure (a timeout, a peer that closed its connection) into a
        one-line :class:`DistributedError`."""
        global _waiting_since
        _waiting_since = time.monotonic()
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as error:  # gloo's and NCCL's errors (DistBackendError is one)
            waited = time.monotonic() - _waiting_since
            timeout = collective_timeout().total_seconds()
            cause = (
                f"the others did not answer within {_describe_seconds(timeout)}" if waited >= 0.9 * timeout
                else "another process ended or lost its connection"
            )  # fmt: skip
            raise DistributedError(
                f"{self.describe()}: {what} failed after {waited:.0f} s: {cause} (a process stopped, hung or killed?); "
                f"the backend says: {' '.join(str(error).split())[:160]}; set {TIMEOUT_VARIABLE} (seconds, default "
                f"{_describe_seconds(COLLECTIVE_TIMEOUT.total_seconds())}) for another timeout"
            ) from None
        finally:
            _waiting_since = None

    def gather(self, value: Any) -> list:
        """Every process's ``value`` (picklable), in rank order, on every process."""
        if not self.distributed:
            return [value]
        self._check_group()
        values: list = [None] * self.size
        with self._collective("exchanging a value with the other processes"):
            dist.all_gather_object(values, value)
        return values

    def agree(self, error: Optional[BaseException]) -> None:
        """Stop every process if any failed: each process passes the error it met (or ``None``);
        the one that failed raises its own error, the others :class:`PeerFailed` with the first
        failure's message. With one process, ``error`` is raised as it is."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        messages = self.gather(None if error is None else _one_line(error))
        failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
        if error is not None:
            raise error
        if failed:
            rank, message = failed[0]
            raise PeerFailed(f"process {rank} of {self.size} stopped: {message}")

    def together(self, work: Callable[[], T]) -> T:
        """``work()`` on every process; a failure on any process stops all of them (:meth:`agree`)."""
        if not self.distributed:
            return work()
        result, error = None, None
        try:
            result = work()
        except Exception as caught:  # noqa: BLE001  (any failure must reach the other processes)
            error = caught
        self.agree(error)
        return result

    def on_main(self, work: Callable[[], T]) -> T:
        """``work()`` on rank 0 only; its result (picklable) on every process, or its failure
        raised on every process."""
        if not self.distributed:
            return work()
        result, error = None, None
        if self.is_main:
            try:
                result = work()
            except Exception as caught:  # noqa: BLE001
                error = caught
        outcomes = self.gather((None if error is None else _one_line(error), result if self.is_main else None))
        if error is not None:
            raise error
        if outcomes[0][0] is not None:
            raise PeerFailed(f"process 0 of {self.size} stopped: {outcomes[0][0]}")
        return outcomes[0][1]

    def main_first(self, work: Callable[[], T]) -> T:
        """``work()`` on rank 0, then on the others (rank 0 builds what they then read, such as a
        data cache); a failure on any process stops all of them."""
        if not self.distributed:
            return work()
        result = self.together(lambda: work() if self.is_main else None)
        others = self.together(lambda: None if self.is_main else work())
        return result if self.is_main else others

    def broadcast_tensors(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` (in the same order on every process) with rank 0's values."""
        if not self.distributed:
            return
        self._check_group()
        with torch.no_grad(), self._collective("receiving process 0's parameters"):
            for tensor in tensors:
                dist.broadcast(tensor.data, src=0)

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the processes, in place."""
        if self.distributed:
            with self._collective("summing the gradients over the processes"):
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


class CollectiveWatchdog:
    """A thread that watches this process's collectives while it trains with others: it says so
    (once per collective) when one has waited :data:`WAIT_WARNING_SECONDS`, and when a stop
    signal (SIGTERM, SIGINT, SIGUSR1) arrives while the process waits in a collective that does
    not end within :data:`SIGNAL_GRACE_SECONDS`, it prints ``error: <exit_message(signal)>`` and
    ends the process with status 128 + the signal.

    Python runs a signal's handler only between bytecodes of the main thread, which a blocked
    collective never reaches: without this, a process whose peer is stopped (SIGSTOP, a debugger)
    ignores a scheduler's SIGTERM until the collective timeout. The signal reaches this thread
    through :func:`signal.set_wakeup_fd`. Its state cannot be saved then (the other processes'
    random states are out of reach); the last checkpoint stays.

    Use as a context manager, from the main thread, while the stop handlers are installed.
    """

    def __init__(self, world: World, exit_message: Callable[[int, float], str]):
        self.world, self.exit_message = world, exit_message
        self._reader, self._writer = socket.socketpair()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="collective-watchdog", daemon=True)
        self._previous_fd: Optional[int] = None

    def __enter__(self) -> "CollectiveWatchdog":
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._previous_fd if self._previous_fd is not None else -1)
        self._stop.set()
        self._thread.join()
        self._reader.close()
        self._writer.close()

    def _watch(self) -> None:
        # (signal, when, the collective it found the process in): a stop signal that arrived
        # while the process waited, kept until that collective ends (the handler then runs).
        signalled: Optional[tuple[int, float, float]] = None
        warned_for: Optional[float] = None  # the collective already warned about
        while not self._stop.is_set():
            ready, _, _ = select.select([self._reader], [], [], 0.2)
            now, since = time.monotonic(), _waiting_since
            if ready:
                for number in self._reader.recv(64):
                    if number in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) and since is not None and signalled is None:
                        signalled = (number, now, since)
            if signalled is not None and since != signalled[2]:
                signalled = None  # that collective ended: the handler has the signal, and stops at the next batch
            if since is None:
                continue
            if signalled is not None and now - signalled[1] >= SIGNAL_GRACE_SECONDS:
                self._exit(signalled[0], now - since)
            if now - since >= WAIT_WARNING_SECONDS and warned_for != since:
                warned_for = since
                log.warning(
                    "%s has waited %.0f s for the other processes (one of them validating, saving or building the data "
                    "cache, or stopped or hung); it gives up after %s (%s)",
                    self.world.describe(), now - since, _describe_seconds(collective_timeout().total_seconds()), TIMEOUT_VARIABLE,
                )  # fmt: skip

    def _exit(self, number: int, waited: float) -> None:
        try:
            message = " ".join(self.exit_message(number, waited).split())
            print(f"error: {message}", file=sys.stderr, flush=True)
        finally:
            os._exit(128 + number)


class DataParallelSVI(SVI):
    """:class:`pyro.infer.SVI` for a training loop that never waits on the device, on one
    process or several (a :class:`World`).

    :meth:`step` returns the loss as a 0-dim tensor on the device, not a float: reading a value
    waits for the device, so the loop reads the losses once every few steps. The gradient is the
    objective's ``differentiable_loss`` and ``backward`` where it has one (every Pyro ELBO but
    ``TraceGraph_ELBO``), else its ``loss_and_grads`` (which reads the loss).

    With several processes, each step sums every process's gradients and loss in one all-reduce
    before the optimiser's step (see the module doc), together with the processes' stop requests:
    set :attr:`stop_requested` before a step, read :meth:`take_stop_requests` at a read point.
    Every process then steps every parameter of the Pyro param store with the summed gradient
    (zero where no process's loss reached it), which is what one process's SVI does from its
    second step on; with one process the step is exactly SVI's.
    """

    def __init__(self, model, guide, optim, loss, world: World = World()):
        super().__init__(model, guide, optim, loss)
        self.objective = loss
        self.world = world
        #: this process's request to stop, sent with its next step.
        self.stop_requested = False
        self._stop_requests: Optional[torch.Tensor] = None
        self._parameters: Optional[list[torch.Tensor]] = None

    # --- one process's shard --------------------------------------------------------------

    def _local_loss_and_grads(self, *args, **kwargs) -> tuple[torch.Tensor, set]:
        """This process's loss (detached, on the device) with its gradients accumulated, and the
        parameters it used."""
        with poutine.trace(param_only=True) as capture:
            differentiable_loss = getattr(self.objective, "differentiable_loss", None)
            if differentiable_loss is None:
                loss = torch.as_tensor(self.loss_and_grads(self.model, self.guide, *args, **kwargs))
            else:
                loss = differentiable_loss(self.model, self.guide, *args, **kwargs)
                if loss.requires_grad:
                    loss.backward(retain_graph=getattr(self.objective, "retain_graph", None))
                loss = loss.detach()
        used = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
        return loss, used

    def _store_parameters(self) -> list[torch.Tensor]:
        """The param store's parameters in name order: the same list on every process."""
        store = pyro.get_param_store()
        if self._parameters is None or len(self._parameters) != len(store):
            self._parameters = [param for _, param in sorted(store.named_parameters())]
        return self._parameters

    # --- the step -------------------------------------------------------------------------

    def gradients(self, *args, **kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The loss of the whole batch (summed over the processes' shards) and the parameters
        whose ``.grad`` now holds the whole batch's gradient; nothing is updated. A process whose
        shard is empty passes no arguments."""
        if args or kwargs:
            loss, used = self._local_loss_and_grads(*args, **kwargs)
        else:
            if not self.world.distributed:
                raise ValueError("a step without data only makes sense beside other processes")
            loss, used = None, set()
        if not self.world.distributed:
            return loss, list(used)
        return self._sum_over_processes(loss)

    def _sum_over_processes(self, loss: Optional[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        parameters = self._store_parameters()
        device = parameters[0].device
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        local_loss = loss.to(device=device, dtype=grads[0].dtype).reshape(1) if loss is not None else torch.zeros(1, device=device)
        # torch.full fills on the device: no host-to-device copy, so no wait.
        stop = torch.full((1,), float(self.stop_requested), device=device, dtype=grads[0].dtype)
        flat = torch.cat([g.reshape(-1) for g in grads] + [local_loss, stop])
        self.world.all_reduce_sum_(flat)
        offset = 0
        for p in parameters:
            p.grad = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        self._stop_requests = flat[-1] if self._stop_requests is None else self._stop_requests + flat[-1]
        return flat[-2], parameters

    def step(self, *args, **kwargs) -> torch.Tensor:
        """One optimiser step on the batch (this process's shard of it); returns the whole batch's
        loss as a 0-dim tensor on the device."""
        loss, parameters = self.gradients(*args, **kwargs)
        self.optim(parameters)
        if self.world.distributed:
            for p in parameters:  # the reduced gradients are views of one buffer: let it go
                p.grad = None
        else:
            zero_grads(parameters)
        return loss

    def step_without_data(self) -> torch.Tensor:
        """The step of a process whose shard of the batch is empty: it joins the all-reduce with
        no gradient and no loss, and takes the same optimiser step as the others."""
        return self.step()

    def take_stop_requests(self) -> int:
        """How many process-steps asked to stop since the last call (reads the device: call it at
        a read point); the same number on every process."""
        if self._stop_requests is None:
            return int(self.stop_requested)
        requests, self._stop_requests = int(self._stop_requests.item()), None
        return requests
