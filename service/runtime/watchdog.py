"""Inference that never returns: notice it, answer its callers 503, and let the process be replaced.

onnxruntime runs in-process (the hot path pays no hand-off to another process), so a native op that spins
forever holds its model's worker thread for good, and nothing in Python can interrupt it. What the
process can do is notice, and stop pretending to be healthy:

- ``TimedHandler`` wraps a model's batch handler and records when the batch now running started, and the
  model's measured seconds per image (a moving average over finished batches).
- ``ModelGuard`` tracks the requests waiting on that model; when the model is declared stalled it
  cancels them, and they answer 503 with ``Retry-After`` instead of waiting for a result that never comes.
- ``Watchdog`` is a thread (it must run even when the stuck batch holds the event loop) that declares a
  model stalled once its batch runs past ``max(min_s, factor * expected)``; it then asks the process to
  shut down gracefully and, should the event loop itself be stuck, ends it with ``os._exit`` after
  ``exit_after_s``. A supervisor (``poolserve serve``, compose's ``restart:``, Kubernetes) starts a
  fresh one. docs/limits.md has the whole story.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from poolserve.service.errors import ModelNotReady
from poolserve.service.runtime.batcher import BatchCost, BatchHandler

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

# The exit status of a process that gave up on an inference thread that never returned: not 0, so that
# `restart: on-failure` restarts it too, and not a signal's 128+n, so that logs tell the two apart.
EXIT_INFERENCE_STALLED = 70
RETRY_AFTER_S = 5  # about what a replacement process needs to load the shipped models


@dataclass(frozen=True)
class WatchdogConfig:
    min_s: float  # no batch is declared stalled before this, whatever its expected time
    factor: float  # ...nor before ``factor`` times its expected time (measured seconds per image * size)
    exit_after_s: float  # from the declaration to ``os._exit``, should a graceful stop not finish first
    check_interval_s: float = 0.25
    # The event loop must take the declaration within this long; if it does not, the stalled batch is
    # running on the loop itself (an inline batch), nobody can be answered, and waiting is pointless.
    loop_ack_s: float = 2.0


class TimedHandler(Generic[ItemT, ResultT]):
    """A ``BatchHandler`` that says whether its batch in progress is overdue; two clock reads a batch."""

    def __init__(self, inner: BatchHandler[ItemT, ResultT]) -> None:
        self._inner = inner
        self._running: tuple[float, int] | None = None  # (started, images); one assignment: thread-safe
        # The handler's own time, hand-offs excluded: not the batcher's BatchCost, which includes them.
        self._cost = BatchCost()

    def size(self, item: ItemT) -> int:
        return self._inner.size(item)

    def run(self, items: Sequence[ItemT]) -> Sequence[ResultT]:
        size = sum(self._inner.size(i) for i in items)
        started = time.monotonic()
        self._running = (started, size)
        try:
            return self._inner.run(items)
        finally:
            self._running = None
            self._cost.observe(size, time.monotonic() - started)

    @property
    def busy(self) -> bool:
        """A batch is running (in the worker thread, or inline on the event loop)."""
        return self._running is not None

    def overdue_s(self, config: WatchdogConfig, now: float) -> float | None:
        """How long the running batch has run, when that is past its limit; else None."""
        running = self._running
        if running is None:
            return None
        started, size = running
        expected = self._cost.expected_s(max(size, 1)) or 0.0
        elapsed = now - started
        return elapsed if elapsed > max(config.min_s, config.factor * expected) else None


class ModelGuard(Generic[ItemT, ResultT]):
    """One model's stall state and the request tasks waiting on it."""

    def __init__(self, name: str, handler: TimedHandler[ItemT, ResultT]) -> None:
        self.name = name
        self.handler = handler
        self.stalled = False
        self.shutting_down = False  # the server's grace period is running; what it cancels answers 503
        self._waiters: set[asyncio.Task[object]] = set()

    def refuse_if_stalled(self) -> None:
        if self.stalled:
            raise ModelNotReady(
                f"model {self.name!r} stopped responding; the server is restarting",
                retry_after_s=RETRY_AFTER_S,
            )

    async def run(self, submit: Callable[[ItemT], Awaitable[ResultT]], item: ItemT) -> ResultT:
        """``await submit(item)``; a stall answers 503 instead (this task is cancelled, then refused)."""
        self.refuse_if_stalled()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("ModelGuard.run must be awaited inside a task, which a stall can cancel")
        self._waiters.add(task)
        try:
            return await submit(item)
        except asyncio.CancelledError:
            if (self.stalled or self.shutting_down) and task.cancelling():
                task.uncancel()  # the watchdog's or the server's cancel, not the time limit's: answer it
                self.refuse_if_stalled()
                raise ModelNotReady("the server is shutting down", retry_after_s=RETRY_AFTER_S) from None
            raise
        finally:
            self._waiters.discard(task)

    def declare_stalled(self) -> None:
        """Called on the event loop: every waiter (running or queued) answers 503 from here on."""
        self.stalled = True
        for task in list(self._waiters):
            task.cancel()


class Watchdog:
    """A daemon thread that watches every guard; see the module's docstring."""

    def __init__(
        self,
        guards: Callable[[], Sequence[ModelGuard[Any, Any]]],
        config: WatchdogConfig,
        loop: asyncio.AbstractEventLoop,
        on_stall: Callable[[str], object],
    ) -> None:
        self._guards = guards  # called each round: models that load later are watched too
        self._config = config
        self._loop = loop
        self._on_stall = on_stall
        self._stop = threading.Event()
        self._acknowledged = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="inference-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        exit_at: float | None = None
        ack_by: float | None = None
        while not self._stop.wait(self._config.check_interval_s):
            now = time.monotonic()
            if ack_by is not None and now >= ack_by and not self._acknowledged.is_set():
                log.critical("the event loop itself is stuck in the stalled inference; exiting now")
                os._exit(EXIT_INFERENCE_STALLED)
            if exit_at is not None and now >= exit_at:
                log.critical("the process did not stop after an inference stalled; exiting now")
                os._exit(EXIT_INFERENCE_STALLED)
            for guard in self._guards():
                if guard.stalled:
                    continue
                elapsed = guard.handler.overdue_s(self._config, now)
                if elapsed is None:
                    continue
                log.critical(
                    "model %s: a batch has run for %.1f s, far past its expected time; answering its "
                    "requests 503 and restarting the process",
                    guard.name,
                    elapsed,
                )
                guard.stalled = True  # new requests are refused at once, even before the loop runs
                self._loop.call_soon_threadsafe(self._stall_on_loop, guard)
                exit_at = exit_at or now + self._config.exit_after_s
                ack_by = ack_by or now + self._config.loop_ack_s

    def _stall_on_loop(self, guard: ModelGuard[Any, Any]) -> None:
        self._acknowledged.set()
        guard.declare_stalled()
        self._on_stall(guard.name)


def request_shutdown() -> None:
    """Ask the server for its graceful shutdown, as an orchestrator's SIGTERM would."""
    os.kill(os.getpid(), signal.SIGTERM)
