"""Server processes the benches start and stop (imported as `from _proc import port_free, server_stop`;
the benches run as scripts, so `bench/` is on sys.path)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess


def port_free() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_stop(server: subprocess.Popen) -> None:
    """Stop a server started in its own process group (start_new_session), its workers with it."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
