"""The supervisor: holds the listening socket, runs one server process on it, and restarts it when it dies.

A native crash (a segfault in onnxruntime) kills the server process, and an inference that never returns
makes it exit on purpose (``poolserve.service.runtime.watchdog``). Either way the supervisor starts a fresh
one on
the same socket: connections that arrive meanwhile wait in the socket's backlog instead of being refused.
SIGTERM or SIGINT stop it: the socket closes (no new connections), the server drains its requests for
``shutdown_grace_s``, and a server still alive 5 s after that is killed.

``python -m poolserve.service.supervisor`` (the container's entry point) and ``poolserve serve`` both run it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from poolserve.service.settings import Settings

log = logging.getLogger("poolserve.service.supervisor")

BACKLOG = 2048  # uvicorn's default
FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 30.0
STABLE_AFTER_S = 60.0  # a server that lived this long starts the back-off afresh when it dies
KILL_MARGIN_S = 5.0


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, sock: socket.socket, grace_s: float, env: dict[str, str] | None = None) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._grace_s = grace_s
        self._env = env
        self._stopping = threading.Event()
        self._kill_at: float | None = None
        self._child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """Serve until asked to stop; the exit status: 0 for a clean stop, else the last server's."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        delay = FIRST_RESTART_DELAY_S
        while True:
            started = time.monotonic()
            self._child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "poolserve.service.serve", "--fd", str(self._fd)],
                pass_fds=[self._fd],
                env=self._env,
            )
            code = self._wait(self._child)
            if self._stopping.is_set():
                return 0 if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM) else _status(code)
            if time.monotonic() - started > STABLE_AFTER_S:
                delay = FIRST_RESTART_DELAY_S
            log.error("the server exited (%s); starting a new one in %.1f s", _describe(code), delay)
            if self._stopping.wait(delay):
                return 0
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        while True:
            try:
                return child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if self._kill_at is not None and time.monotonic() > self._kill_at:
                    log.error("the server did not stop within its grace period; killing it")
                    child.kill()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._sock.close()  # the server's copy closes as its drain starts: then the port refuses
        self._kill_at = time.monotonic() + self._grace_s + KILL_MARGIN_S
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGTERM)


def _status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal n: the shell's 128 + n


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def serve_supervised(settings: Settings, env_overrides: dict[str, str] | None = None) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    sock = listen(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    log.info("listening on %s:%d; the server process starts now", host, port)
    env = {**os.environ, **(env_overrides or {})}
    return Supervisor(sock, settings.shutdown_grace_s, env).run()


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(serve_supervised(Settings()))


if __name__ == "__main__":
    main()
