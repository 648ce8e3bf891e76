"""The request time limit: every request's task is cancelled once it has run for the app's ``seconds``.

Every request gets the same limit, so deadlines fall in arrival order: one timer, armed for the oldest
open request, serves them all. Starting and finishing a request is a dict insert and delete, where
``asyncio.timeout`` arms, reschedules and cancels a timer of the event loop per request. Expiry follows
``asyncio.timeout``: the task is cancelled, and the caller turns that cancellation (and only that one)
into a timeout with ``Deadline.absorb``.
"""

from __future__ import annotations

import asyncio


class Deadline:
    __slots__ = ("at", "cancelling", "expired", "task")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task, self.at = task, at
        self.cancelling = task.cancelling()  # cancellations requested before ours: not ours to absorb
        self.expired = False

    def absorb(self) -> bool:
        """Withdraws this deadline's cancellation of the task, if it made one (once); whether the task's
        cancellation was this deadline's alone, as ``asyncio.timeout`` decides when to raise
        ``TimeoutError``."""
        if not self.expired:
            return False
        self.expired = False
        return self.task.uncancel() <= self.cancelling


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._open: dict[Deadline, None] = {}  # insertion order is deadline order
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> Deadline:
        """A deadline for the running task, ``seconds`` from now."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an app served by another loop than before (tests, restarts)
            self._loop, self._timer = loop, None
            self._open.clear()
        task = asyncio.current_task(loop)
        assert task is not None
        deadline = Deadline(task, loop.time() + self.seconds)
        self._open[deadline] = None
        if self._timer is None:
            self._timer = loop.call_at(deadline.at, self._expire, loop)
        return deadline

    def finish(self, deadline: Deadline) -> None:
        self._open.pop(deadline, None)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a timer left on a loop the app no longer runs on
            return
        self._timer = None
        now = loop.time()
        while self._open:
            oldest = next(iter(self._open))
            if oldest.at > now:
                self._timer = loop.call_at(oldest.at, self._expire, loop)
                return
            del self._open[oldest]
            oldest.expired = True
            oldest.task.cancel()
