"""A per-model dynamic batcher: requests queue up, and one worker thread runs them together.

It knows nothing about HTTP or onnxruntime: a ``BatchHandler`` says how big an item is and how to run a
list of items as one batch (in the worker thread). Items are whole requests (several images each), so a
batch holds up to ``max_batch_size`` images, never splitting a request; a request bigger than that runs alone.

A batch is collected only when the worker is free, and it takes everything queued at that moment (what
arrived while the last batch ran). Whether it then waits for more is the batching window
(``BatchConfig.window``), and both windows wait only under load: when the previous batch held more than
one request or something arrived while it ran. A lone request after an idle spell runs at once, so a
closed loop at concurrency 1 never pays a window, and ``max_queue_delay_ms`` 0 never waits.

- ``"measured"`` (the default) waits only while the batch's oldest request has queued for less than the
  batch is expected to run (the model's measured time per image times the batch's images), and never past
  ``max_queue_delay_ms`` of queueing. Waiting then costs a request at most what running costs it anyway;
  a model whose batches take microseconds (the digit models on a CPU) barely waits, one whose batches take
  tens of milliseconds waits up to the cap for a fuller batch.
- ``"max-delay"`` waits up to ``max_queue_delay_ms`` after collection begins, whatever a batch costs: the
  fullest batches, for hardware where batch size pays more than the wait costs.

Where a batch runs is adaptive too: in the worker thread, so the event loop keeps serving while
onnxruntime computes, unless the batch is expected to take under ``inline_max_ms``; then it runs on the
loop itself, because handing a tiny batch to a thread and back costs more than running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from poolserve.service.errors import ModelNotReady, QueueFull

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)
ResultT_co = TypeVar("ResultT_co", covariant=True)


class BatchHandler(Protocol[ItemT_contra, ResultT_co]):
    def size(self, item: ItemT_contra) -> int:
        """How many batch slots (images) the item takes."""
        ...

    def run(self, items: Sequence[ItemT_contra]) -> Sequence[ResultT_co]:
        """Run the items as one batch; one result per item, in order. Called in the worker thread."""
        ...


class BatchObserver(Protocol):
    def batch_ran(self, model: str, size: int, seconds: float) -> None: ...

    def queue_depth(self, model: str, depth: int) -> None: ...

    def window_waited(self, model: str, seconds: float) -> None:
        """Once per batch collected: how long it was held open for more requests (0: it never waited)."""
        ...


BatchWindow = Literal["measured", "max-delay"]


@dataclass(frozen=True)
class BatchConfig:
    max_batch_size: int
    max_queue_delay_ms: float  # the cap on waiting for a fuller batch; 0: never wait
    queue_capacity: int
    inline_max_ms: float = 0.0  # 0: every batch runs in the worker thread
    window: BatchWindow = "measured"


class BatchCost:
    """What a batch is expected to take: the measured time per image, a moving average over the batches
    run so far, times the batch's images. Thread runs include the hand-offs, so it errs towards the thread."""

    def __init__(self) -> None:
        self.seconds_per_image: float | None = None  # None until a batch has run

    def observe(self, size: int, seconds: float) -> None:
        per_image = seconds / max(size, 1)
        previous = self.seconds_per_image
        self.seconds_per_image = per_image if previous is None else 0.8 * previous + 0.2 * per_image

    def expected_s(self, size: int) -> float | None:
        return None if self.seconds_per_image is None else self.seconds_per_image * size


def window_left_s(
    window: BatchWindow,
    *,
    loaded: bool,
    cap_s: float,
    collecting_s: float,
    queued_s: float,
    expected_s: float | None,
) -> float:
    """How much longer to wait for another request before running the batch collected so far; <= 0: run.

    ``collecting_s``: since the batch began collecting; ``queued_s``: since its oldest request was queued;
    ``expected_s``: what the batch collected so far is expected to take (None: nothing measured yet).
    """
    if not loaded:
        return 0.0  # idle: nobody else is coming soon, so run what is here now
    if window == "max-delay":
        return cap_s - collecting_s
    if expected_s is None:
        return 0.0
    return min(cap_s, expected_s) - queued_s


@dataclass
class _Pending(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]
    queued_at: float  # the event loop's clock when it was submitted


class DynamicBatcher(Generic[ItemT, ResultT]):
    def __init__(
        self,
        name: str,
        handler: BatchHandler[ItemT, ResultT],
        config: BatchConfig,
        observer: BatchObserver | None = None,
        cost: BatchCost | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._handler = handler
        self._observer = observer
        self._queue: asyncio.Queue[_Pending[ItemT, ResultT]] = asyncio.Queue(maxsize=config.queue_capacity)
        self._carry: _Pending[ItemT, ResultT] | None = None  # did not fit the last batch; goes first next
        self._loaded = False  # the last batch showed concurrent traffic: only then is a window worth waiting
        self._cost = cost or BatchCost()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batcher-{name}")
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize() + (self._carry is not None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._collect_forever(), name=f"batcher-{self.name}"
        )

    async def submit(self, item: ItemT) -> ResultT:
        """Queue one item and wait for its result. Cancelling the caller drops the item if not yet run."""
        if self._task is None or self._task.done():
            raise ModelNotReady(f"model {self.name!r} is not accepting requests")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        try:
            self._queue.put_nowait(_Pending(item, future, loop.time()))
        except asyncio.QueueFull:
            raise QueueFull(f"model {self.name!r} has {self.config.queue_capacity} requests queued") from None
        self._report_depth()
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        leftovers = [self._carry] if self._carry else []
        while not self._queue.empty():
            leftovers.append(self._queue.get_nowait())
        for pending in leftovers:
            if not pending.future.done():
                pending.future.set_exception(ModelNotReady(f"model {self.name!r} is shutting down"))
        self._executor.shutdown(wait=True)

    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, waited_s = await self._collect(loop)
            self._report_depth()
            if self._observer is not None:
                self._observer.window_waited(self.name, waited_s)
            live = [p for p in batch if not p.future.done()]  # timed-out callers cancelled theirs
            if live:
                await self._run(loop, live)
            # Load: several requests per batch, or arrivals while it ran; a lone caller shows neither.
            self._loaded = len(live) > 1 or self._carry is not None or not self._queue.empty()

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> tuple[list[_Pending[ItemT, ResultT]], float]:
        """The next batch, and how long the window held it open waiting for more requests."""
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], self._handler.size(first.item)
        began = loop.time()
        waited_s = 0.0
        while size < self.config.max_batch_size:
            if self._queue.empty():
                now = loop.time()
                wait_s = self._window_left_s(now, began, first.queued_at, size)
                if wait_s <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), wait_s)
                except TimeoutError:
                    break
                finally:
                    waited_s += loop.time() - now
            else:
                nxt = self._queue.get_nowait()  # whatever queued while we ran goes in without waiting
            nxt_size = self._handler.size(nxt.item)
            if size + nxt_size > self.config.max_batch_size:
                self._carry = nxt
                break
            batch.append(nxt)
            size += nxt_size
        return batch, waited_s

    def _window_left_s(self, now: float, began: float, oldest_queued_at: float, size: int) -> float:
        return window_left_s(
            self.config.window,
            loaded=self._loaded,
            cap_s=self.config.max_queue_delay_ms / 1000,
            collecting_s=now - began,
            queued_s=now - oldest_queued_at,
            expected_s=self._cost.expected_s(size),
        )

    def runs_inline(self, size: int) -> bool:
        """Whether a batch of ``size`` images is expected to finish within ``inline_max_ms``."""
        expected = self._cost.expected_s(size)
        return expected is not None and expected * 1000 <= self.config.inline_max_ms

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[ItemT, ResultT]]) -> None:
        items = [p.item for p in batch]
        size = sum(self._handler.size(i) for i in items)
        started = time.perf_counter()
        try:
            if self.runs_inline(size):
                results = self._handler.run(items)
            else:
                results = await loop.run_in_executor(self._executor, self._handler.run, items)
        except Exception as exc:
            await self._isolate(loop, batch, exc)
            return
        seconds = time.perf_counter() - started
        self._cost.observe(size, seconds)
        if self._observer is not None:
            self._observer.batch_ran(self.name, size, seconds)
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)

    async def _isolate(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[ItemT, ResultT]], exc: Exception
    ) -> None:
        """A failed batch is run again in halves until the failure is down to single requests: those get
        the error, everyone else their result. One bad request among n costs about 2 log2(n) extra runs."""
        live = [p for p in batch if not p.future.done()]
        if len(live) == 1:
            live[0].future.set_exception(exc)
        elif live:
            middle = len(live) // 2
            await self._run(loop, live[:middle])
            await self._run(loop, live[middle:])

    def _report_depth(self) -> None:
        if self._observer is not None:
            self._observer.queue_depth(self.name, self.depth)
