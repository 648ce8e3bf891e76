"""A per-model dynamic batcher: requests queue up, and one worker thread runs them together.

It knows nothing about HTTP or onnxruntime: a ``BatchHandler`` says how big an item is and how to run a
list of items as one batch (in the worker thread). Items are whole requests (several images each), so a
batch holds up to ``max_batch_size`` images, never splitting a request; a request bigger than that runs alone.

Waiting is adaptive: the worker never idles on a window when there is no load. A batch is collected only
when the worker is free; it takes everything queued at that moment (what arrived while the last batch ran),
and it waits up to ``max_queue_delay_ms`` for more only when the previous batch held more than one request or
something arrived while it ran (concurrent traffic, where the window buys bigger batches). A lone request
after an idle spell runs at once, so a closed loop at concurrency 1 never pays the window;
``max_queue_delay_ms`` stays the upper bound on the wait under load, and 0 never waits.

Where a batch runs is adaptive too: in the worker thread, so the event loop keeps serving while
onnxruntime computes, unless the batch is expected to take under ``inline_max_ms`` (from the model's
measured time per image); then it runs on the loop itself, because handing it to a thread and back costs
more than running it (a digit batch of one: ~30 us of inference against ~150 us of hand-offs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

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


@dataclass(frozen=True)
class BatchConfig:
    max_batch_size: int
    max_queue_delay_ms: float
    queue_capacity: int
    inline_max_ms: float = 0.0  # 0: every batch runs in the worker thread


@dataclass
class _Pending(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]


class DynamicBatcher(Generic[ItemT, ResultT]):
    def __init__(
        self,
        name: str,
        handler: BatchHandler[ItemT, ResultT],
        config: BatchConfig,
        observer: BatchObserver | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._handler = handler
        self._observer = observer
        self._queue: asyncio.Queue[_Pending[ItemT, ResultT]] = asyncio.Queue(maxsize=config.queue_capacity)
        self._carry: _Pending[ItemT, ResultT] | None = None  # did not fit the last batch; goes first next
        self._loaded = (
            False  # the last batch held more than one request: only then is the window worth waiting
        )
        self._seconds_per_image: float | None = None  # moving average; None until a batch has run
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
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, future))
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
            batch = await self._collect(loop)
            self._report_depth()
            live = [p for p in batch if not p.future.done()]  # timed-out callers cancelled theirs
            if live:
                await self._run(loop, live)
            # Load: several requests per batch, or arrivals while it ran; a lone caller shows neither.
            self._loaded = len(live) > 1 or self._carry is not None or not self._queue.empty()

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Pending[ItemT, ResultT]]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], self._handler.size(first.item)
        deadline = loop.time() + self.config.max_queue_delay_ms / 1000
        while size < self.config.max_batch_size:
            try:
                if self._queue.empty():
                    if not self._loaded:
                        break  # idle: nobody else is coming soon, so run what is here now
                    nxt = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time()))
                else:
                    nxt = self._queue.get_nowait()  # whatever queued while we ran goes in without waiting
            except TimeoutError:
                break
            nxt_size = self._handler.size(nxt.item)
            if size + nxt_size > self.config.max_batch_size:
                self._carry = nxt
                break
            batch.append(nxt)
            size += nxt_size
        return batch

    def runs_inline(self, size: int) -> bool:
        """Whether a batch of ``size`` images is expected to finish within ``inline_max_ms``."""
        expected = self._seconds_per_image
        return expected is not None and expected * size * 1000 <= self.config.inline_max_ms

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
        # Thread runs include the hand-offs, so the average errs towards the thread: the safe side.
        per_image = seconds / max(size, 1)
        previous = self._seconds_per_image
        self._seconds_per_image = per_image if previous is None else 0.8 * previous + 0.2 * per_image
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
