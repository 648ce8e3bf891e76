"""The supervisor: holds the listening socket, runs N server processes on it, and replaces each one that dies.

A native crash (a segfault in onnxruntime) kills a server process, and an inference that never returns
makes it exit on purpose (``poolserve.service.runtime.watchdog``). Either way the supervisor starts a fresh
one on the same socket, for that worker alone: the others keep accepting meanwhile, and with a single
worker connections that arrive wait in the socket's backlog instead of being refused. SIGTERM or SIGINT
stop it: the socket closes (no new connections), every server drains its requests for
``shutdown_grace_s``, and a server still alive 5 s after that is killed.

``python -m poolserve.service.supervisor`` (the container's entry point) and ``poolserve serve`` both run it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from poolserve.service.cores import available_cores, intra_op_threads_per_worker
from poolserve.service.settings import Settings
from poolserve.service.startup import StartupError, checked_settings, refuse

log = logging.getLogger("poolserve.service.supervisor")

BACKLOG = 2048  # uvicorn's default
FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 30.0
STABLE_AFTER_S = 60.0  # a server that lived this long starts the back-off afresh when it dies
KILL_MARGIN_S = 5.0
POLL_S = 0.2
CLEAN_EXITS = (0, -signal.SIGTERM, 128 + signal.SIGTERM)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket every server process inherits; a ``StartupError`` when it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:  # in use, not an address of this host, not allowed
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@dataclass
class Worker:
    """One server process slot: its current process, and its own restart back-off."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay_s: float = FIRST_RESTART_DELAY_S
    restart_at: float = 0.0  # when a dead worker's replacement is due


class Supervisor:
    def __init__(
        self, sock: socket.socket, grace_s: float, env: dict[str, str] | None = None, workers: int = 1
    ) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._grace_s = grace_s
        self._env = env
        self._stopping = threading.Event()
        self._workers = [Worker(i) for i in range(workers)]

    def run(self) -> int:
        """Serve until asked to stop; the exit status: 0 for a clean stop, else a failing server's."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        while not self._stopping.is_set():
            now = time.monotonic()
            for worker in self._workers:
                if worker.process is None:
                    if now >= worker.restart_at:
                        self._start(worker)
                elif (code := worker.process.poll()) is not None:
                    self._died(worker, code, now)
            self._stopping.wait(POLL_S)
        return self._drain()

    def _start(self, worker: Worker) -> None:
        command = [sys.executable, "-m", "poolserve.service.serve", "--fd", str(self._fd)]
        # A replacement beside servers that still run takes connections only once its models are in:
        # accepting earlier would answer its share "still loading" while the others could serve it.
        # The first start, or a lone server's restart, accepts at once: its probes say it is loading.
        replacing = worker.started != 0.0
        if replacing and any(w.process is not None and w is not worker for w in self._workers):
            command.append("--serve-after-load")
        worker.started = time.monotonic()
        worker.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, pass_fds=[self._fd], env=self._env
        )

    def _died(self, worker: Worker, code: int, now: float) -> None:
        worker.process = None
        if now - worker.started > STABLE_AFTER_S:
            worker.delay_s = FIRST_RESTART_DELAY_S
        log.error(
            "server %d exited (%s); starting a new one in %.1f s",
            worker.index,
            _describe(code),
            worker.delay_s,
        )
        worker.restart_at = now + worker.delay_s
        worker.delay_s = min(worker.delay_s * 2, MAX_RESTART_DELAY_S)

    def _drain(self) -> int:
        """Close the socket, pass SIGTERM on to every server, wait for them (killing stragglers)."""
        # Stop listening for every process at once: shutdown acts on the socket all the servers share, where
        # closing our descriptor would leave it listening in theirs, queuing connections nobody accepts
        # (reset when the last server exits) while the servers drain for up to their grace period.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        running = [w.process for w in self._workers if w.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        kill_at = time.monotonic() + self._grace_s + KILL_MARGIN_S
        codes = [self._wait(process, kill_at) for process in running]
        unclean = [code for code in codes if code not in CLEAN_EXITS]
        return _status(unclean[0]) if unclean else 0

    def _wait(self, process: subprocess.Popen[bytes], kill_at: float) -> int:
        while True:
            try:
                return process.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                if time.monotonic() > kill_at:
                    log.error("server pid %d did not stop within its grace period; killing it", process.pid)
                    process.kill()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping.set()  # the main loop wakes from its wait and drains


def _status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal n: the shell's 128 + n


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def server_env(settings: Settings, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """What every server process starts with: this environment, the overrides, and its thread budget."""
    env = {**os.environ, **(overrides or {})}
    threads = intra_op_threads_per_worker(settings, settings.workers, available_cores())
    if threads is not None:
        env["POOLSERVE_INTRA_OP_THREADS"] = str(threads)
    return env


def serve_supervised(settings: Settings, env_overrides: dict[str, str] | None = None) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    sock = listen(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    env = server_env(settings, env_overrides)
    threads = env.get("POOLSERVE_INTRA_OP_THREADS")
    each = f"{threads} intra-op thread(s) each" if threads else "onnxruntime's own thread count"
    log.info("listening on %s:%d; %d server process(es) start now, %s", host, port, settings.workers, each)
    return Supervisor(sock, settings.shutdown_grace_s, env, settings.workers).run()


def main(argv: Sequence[str] | None = None) -> None:
    """The container's entry point: ``poolserve serve`` with every setting from the environment."""
    try:
        code = serve_supervised(checked_settings())
    except StartupError as exc:
        refuse(exc, "poolserve")
    sys.exit(code)


if __name__ == "__main__":
    main()
