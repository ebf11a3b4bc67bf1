"""Starting a few CPU ranks (gloo) for the distributed tests: a free port, and a spawn that fails instead of hanging.

``mp.spawn(join=True)`` waits forever when one rank blocks in a collective its peer never reaches (a rank that
died without an exception, a lost connection): the test run hangs and nothing says where. ``spawn_ranks`` gives
the ranks a deadline; past it, every live rank prints all its threads' stacks (``faulthandler`` on SIGUSR1, shown
in the test's captured stderr), is killed, and the test fails naming the ranks that were left.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import time
from typing import Any, Callable

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _traced(rank: int, fn: Callable[..., None], *args: Any) -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    fn(rank, *args)


def spawn_ranks(fn: Callable[..., None], args: tuple, nprocs: int = 2, timeout: float = 300.0) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` fresh processes; raise a rank's exception as ``mp.spawn`` does, and
    fail the test (with the live ranks' stacks) when they have not all finished within ``timeout`` seconds."""
    context = mp.start_processes(_traced, args=(fn, *args), nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(0.1, min(5.0, deadline - time.monotonic()))):
        if time.monotonic() < deadline:
            continue
        left = [rank for rank, process in enumerate(context.processes) if process.is_alive()]
        for rank in left:
            os.kill(context.processes[rank].pid, signal.SIGUSR1)
        time.sleep(2)  # let them print
        for rank in left:
            context.processes[rank].kill()
        pytest.fail(f"ranks {left} of {nprocs} still running after {timeout:.0f} s (stacks in the captured stderr)")
