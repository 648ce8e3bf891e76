from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from poolserve.service.errors import ModelNotReady, QueueFull
from poolserve.service.runtime.batcher import BatchConfig, DynamicBatcher


class Recorder:
    """Items are lists of numbers (size = length); results are their sums. Records every batch."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[list[int]]] = []
        self.gate = gate

    def size(self, item: list[int]) -> int:
        return len(item)

    def run(self, items: Sequence[list[int]]) -> list[int]:
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(list(items))
        if any(-1 in i for i in items):
            raise ValueError("boom")
        return [sum(i) for i in items]


def config(max_batch_size: int = 4, delay_ms: float = 50, capacity: int = 16) -> BatchConfig:
    return BatchConfig(max_batch_size=max_batch_size, max_queue_delay_ms=delay_ms, queue_capacity=capacity)


async def started(handler: Recorder, cfg: BatchConfig) -> DynamicBatcher[list[int], int]:
    batcher: DynamicBatcher[list[int], int] = DynamicBatcher("m", handler, cfg)
    batcher.start()
    return batcher


def test_concurrent_items_share_batches_up_to_max_size_and_results_scatter() -> None:
    async def scenario() -> tuple[list[int], Recorder]:
        handler = Recorder()
        batcher = await started(handler, config(max_batch_size=4, delay_ms=200))
        items = [[1], [2, 3], [4], [5, 6], [7]]
        results = await asyncio.gather(*(batcher.submit(i) for i in items))
        await batcher.close()
        return list(results), handler

    results, handler = asyncio.run(scenario())
    assert results == [1, 5, 4, 11, 7]
    # Requests are never split; a batch holds at most 4 slots; order is kept.
    assert handler.batches == [[[1], [2, 3], [4]], [[5, 6], [7]]]


def test_an_item_larger_than_the_batch_runs_alone() -> None:
    async def scenario() -> Recorder:
        handler = Recorder()
        batcher = await started(handler, config(max_batch_size=2, delay_ms=100))
        await asyncio.gather(batcher.submit([1, 1, 1]), batcher.submit([2]))
        await batcher.close()
        return handler

    assert asyncio.run(scenario()).batches == [[[1, 1, 1]], [[2]]]


def test_full_queue_raises_queue_full() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        batcher = await started(Recorder(gate), config(max_batch_size=1, delay_ms=0, capacity=2))
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.05)  # the worker now holds the first item, blocked on the gate
        queued = [asyncio.ensure_future(batcher.submit([i])) for i in (2, 3)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit([4])
        gate.set()
        assert await first == 1
        assert await asyncio.gather(*queued) == [2, 3]
        await batcher.close()

    asyncio.run(scenario())


def test_a_failing_request_fails_alone_and_the_batcher_goes_on() -> None:
    async def scenario() -> Recorder:
        handler = Recorder()
        batcher = await started(handler, config(max_batch_size=8, delay_ms=20))
        items = [[1], [2], [-1], [4], [5]]
        results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
        assert results[:2] == [1, 2] and results[3:] == [4, 5]
        assert isinstance(results[2], ValueError)
        assert await batcher.submit([3]) == 3
        await batcher.close()
        return handler

    batches = asyncio.run(scenario()).batches
    # The failed batch of five, then halves until the bad request runs alone; the good ones never alone.
    assert batches[0] == [[1], [2], [-1], [4], [5]]
    assert [[1], [2]] in batches and [[-1]] in batches and [[-1], [4], [5]] in batches
    assert batches[-1] == [[3]]


def test_two_failing_requests_in_one_batch_each_get_the_error() -> None:
    async def scenario() -> list[object]:
        batcher = await started(Recorder(), config(max_batch_size=8, delay_ms=20))
        items = [[-1], [2], [3], [-1, 4]]
        results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
        await batcher.close()
        return list(results)

    results = asyncio.run(scenario())
    assert results[1:3] == [2, 3]
    assert isinstance(results[0], ValueError) and isinstance(results[3], ValueError)


def test_cancelled_items_are_skipped_and_closed_batchers_refuse() -> None:
    async def scenario() -> Recorder:
        gate = threading.Event()
        handler = Recorder(gate)
        batcher = await started(handler, config(max_batch_size=1, delay_ms=0))
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.05)
        abandoned = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0)
        abandoned.cancel()
        gate.set()
        assert await first == 1
        assert await batcher.submit([3]) == 3
        await batcher.close()
        with pytest.raises(ModelNotReady):
            await batcher.submit([4])
        return handler

    assert asyncio.run(scenario()).batches == [[[1]], [[3]]]


def test_a_lone_request_on_an_idle_batcher_runs_without_waiting_for_the_window() -> None:
    async def scenario() -> Recorder:
        handler = Recorder()
        # A 10-minute window: if the idle worker waited on it, wait_for below would fail, not pass slowly.
        batcher = await started(handler, config(max_batch_size=4, delay_ms=600_000))
        assert await asyncio.wait_for(batcher.submit([1]), 30) == 1
        assert await asyncio.wait_for(batcher.submit([2]), 30) == 2
        await batcher.close()
        return handler

    assert asyncio.run(scenario()).batches == [[[1]], [[2]]]


class ThreadRecorder(Recorder):
    """Also records which thread ran each batch, and can take ``seconds`` per batch."""

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self.threads: list[str] = []
        self.seconds = seconds

    def run(self, items: Sequence[list[int]]) -> list[int]:
        self.threads.append(threading.current_thread().name)
        if self.seconds:
            threading.Event().wait(self.seconds)
        return super().run(items)


def _one_at_a_time(handler: ThreadRecorder, inline_max_ms: float, items: list[list[int]]) -> list[int]:
    async def scenario() -> list[int]:
        cfg = BatchConfig(4, max_queue_delay_ms=0, queue_capacity=8, inline_max_ms=inline_max_ms)
        batcher = await started(handler, cfg)
        results = [await batcher.submit(i) for i in items]
        await batcher.close()
        return results

    return asyncio.run(scenario())


def test_cheap_batches_run_on_the_loop_once_measured() -> None:
    handler = ThreadRecorder()
    assert _one_at_a_time(handler, inline_max_ms=1000, items=[[1], [2], [3]]) == [1, 2, 3]
    # The first batch has no measurement yet: the worker thread. Then the loop's own thread.
    assert handler.threads[0].startswith("batcher-m") and handler.threads[1] == "MainThread"
    assert set(handler.threads[1:]) == {"MainThread"}


def test_failures_on_the_loop_reach_the_caller_like_in_the_thread() -> None:
    async def scenario() -> str:
        cfg = BatchConfig(max_batch_size=4, max_queue_delay_ms=0, queue_capacity=8, inline_max_ms=1000)
        batcher = await started(ThreadRecorder(), cfg)
        await batcher.submit([1])
        assert batcher.runs_inline(1)
        with pytest.raises(ValueError, match="boom"):
            await batcher.submit([-1])
        result = await batcher.submit([5])  # the batcher goes on
        await batcher.close()
        return f"{result}"

    assert asyncio.run(scenario()) == "5"


@pytest.mark.parametrize(("seconds", "inline_max_ms"), [(0.0, 0.0), (0.02, 1.0)])
def test_slow_or_unconfigured_batches_stay_in_the_worker_thread(seconds: float, inline_max_ms: float) -> None:
    handler = ThreadRecorder(seconds)
    _one_at_a_time(handler, inline_max_ms, items=[[1], [2], [3]])
    assert all(t.startswith("batcher-m") for t in handler.threads)
