"""A stopped (not dead) process of a torchrun launch (issue 19, item 11): its peer says that it has
waited, gives up after the collective timeout (``PYRO_CCVAE_COLLECTIVE_TIMEOUT``) in one line,
and a SIGTERM while it waits ends it with a clear message instead of at the timeout. Two gloo
processes on the CPU, a few seconds each."""
from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from pyro_ccvae.distributed import COLLECTIVE_TIMEOUT, DistributedError, TIMEOUT_VARIABLE, collective_timeout

#: each process: join a gloo group, sum once together; then process 1 stops itself (SIGSTOP) and
#: process 0 sums again under the watchdog, with training's kind of SIGTERM handler installed.
WORKER = """
import os, signal, sys, torch
from pyro_ccvae import distributed
grace, warning = float(sys.argv[1]), float(sys.argv[2])
world = distributed.World.from_environment()
world.join(torch.device("cpu"))
world.all_reduce_sum_(torch.ones(1))
if world.rank == 1:
    os.kill(os.getpid(), signal.SIGSTOP)
    sys.exit(0)
distributed.SIGNAL_GRACE_SECONDS, distributed.WAIT_WARNING_SECONDS = grace, warning
signal.signal(signal.SIGTERM, lambda *args: None)  # a handler that only sets a flag, as training's
import logging; logging.basicConfig(format="%(message)s")
with distributed.CollectiveWatchdog(world, lambda number, waited: f"{signal.Signals(number).name} after {waited:.0f} s"):
    print("waiting", flush=True)
    try:
        world.all_reduce_sum_(torch.ones(1))
    except distributed.DistributedError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
print("not stuck", flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_pair(timeout_seconds: float, grace: float, warning: float):
    port = free_port()
    processes = []
    for rank in range(2):
        env = {
            **os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank), TIMEOUT_VARIABLE: str(timeout_seconds), "OMP_NUM_THREADS": "1",
        }  # fmt: skip
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(grace), str(warning)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    return processes


def first_line(main, stopped, seconds: float = 120) -> str:
    """The main process's first line, or both processes killed: a rendezvous that never happens
    must fail the test, not block the suite on ``readline``."""
    if not select.select([main.stdout], [], [], seconds)[0]:
        finish(main, stopped, 0.1)
        raise AssertionError(f"process 0 printed nothing within {seconds} s")
    return main.stdout.readline().strip()


def wait_stopped(process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(f"/proc/{process.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.05)
    raise AssertionError("process 1 did not stop")


def finish(main, stopped, seconds: float):
    try:
        out, err = main.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        main.kill()
        out, err = main.communicate()
    finally:
        main.kill()
        stopped.kill()
        stopped.communicate()
    return main.returncode, out, err


def test_a_sigterm_while_a_peer_is_stopped_ends_the_process_with_a_message():
    main, stopped = start_pair(timeout_seconds=120, grace=1.0, warning=100)
    assert first_line(main, stopped) == "waiting"
    wait_stopped(stopped)
    time.sleep(0.3)
    sent = time.monotonic()
    main.send_signal(signal.SIGTERM)
    code, out, err = finish(main, stopped, 60)
    assert code == 128 + signal.SIGTERM, (code, out, err)
    assert time.monotonic() - sent < 30  # the grace, not the 120 s timeout
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: SIGTERM after "), err
    assert "Traceback" not in err and "not stuck" not in out


def test_a_stopped_peer_is_announced_then_one_line_at_the_timeout():
    main, stopped = start_pair(timeout_seconds=3, grace=100, warning=0.5)
    assert first_line(main, stopped) == "waiting"
    code, out, err = finish(main, stopped, 60)
    assert code == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert re.search(r"process 0 of 2 has waited \d+ s for the other processes", lines[0]) and TIMEOUT_VARIABLE in lines[0], err
    assert "gives up after 3 s" in lines[0]
    assert lines[-1].startswith("error: process 0 of 2: summing the gradients over the processes failed after "), err
    assert "the others did not answer within 3 s" in lines[-1] and TIMEOUT_VARIABLE in lines[-1]


def test_the_collective_timeout_is_read_from_the_environment():
    assert collective_timeout({}) == COLLECTIVE_TIMEOUT == timedelta(minutes=30)
    assert collective_timeout({TIMEOUT_VARIABLE: "90"}) == timedelta(seconds=90)
    assert collective_timeout({TIMEOUT_VARIABLE: " 2.5 "}) == timedelta(seconds=2.5)
    for bad in ("ten", "0", "-5", "nan", "inf"):
        with pytest.raises(DistributedError, match=f"{TIMEOUT_VARIABLE}=.* is not a number of seconds above 0"):
            collective_timeout({TIMEOUT_VARIABLE: bad})
