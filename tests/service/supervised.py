"""A real ``poolserve serve`` (the supervisor and its server processes) for tests, and its process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import server_environment
from tests.service.conftest import ROOT, wait_until_ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether the port takes a new connection."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def supervised_server(
    repository: Path, *args: str, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``poolserve serve [args]`` with ``settings`` as ``POOLSERVE_*`` variables; yields it and its URL."""
    port = free_port()
    env = {
        **server_environment(),
        "POOLSERVE_PORT": str(port),
        "POOLSERVE_REPOSITORY": str(repository),
        "POOLSERVE_LOG_LEVEL": "warning",
        # a 28x28 batch is expected to take microseconds: it would run inline, on the event loop
        "POOLSERVE_INLINE_BATCH_MAX_MS": "0",
        **{f"POOLSERVE_{k.upper()}": v for k, v in settings.items()},
    }
    process = subprocess.Popen([sys.executable, "-m", "poolserve", "serve", *args], cwd=ROOT, env=env)
    try:
        wait_until_ready(process, port, timeout_s=60)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        children = server_processes(process.pid)  # before the supervisor goes: its /proc entry goes too
        if process.poll() is None:
            process.kill()
            process.wait()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def server_processes(supervisor: int) -> list[int]:
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]
