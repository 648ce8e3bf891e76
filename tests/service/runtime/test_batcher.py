from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from poolserve.service.app import build_registry
from poolserve.service.errors import ModelNotReady, QueueFull
from poolserve.service.metrics import ServiceMetrics
from poolserve.service.runtime.batcher import (
    BatchConfig,
    BatchCost,
    BatchObserver,
    BatchWindow,
    DynamicBatcher,
    window_left_s,
)
from poolserve.service.settings import Settings

REPOSITORY = Path(__file__).resolve().parents[3] / "model_repository"


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


def config(
    max_batch_size: int = 4, delay_ms: float = 50, capacity: int = 16, window: BatchWindow = "measured"
) -> BatchConfig:
    return BatchConfig(
        max_batch_size=max_batch_size, max_queue_delay_ms=delay_ms, queue_capacity=capacity, window=window
    )


async def started(
    handler: Recorder, cfg: BatchConfig, cost: BatchCost | None = None, observer: BatchObserver | None = None
) -> DynamicBatcher[list[int], int]:
    batcher: DynamicBatcher[list[int], int] = DynamicBatcher("m", handler, cfg, observer, cost)
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


@pytest.mark.parametrize("window", ["measured", "max-delay"])
def test_a_lone_request_on_an_idle_batcher_runs_without_waiting_for_the_window(window: BatchWindow) -> None:
    async def scenario() -> Recorder:
        handler = Recorder()
        # A 10-minute window, and batches expected to take 10 minutes too: if the idle worker waited,
        # wait_for below would fail, not pass slowly.
        cfg = config(max_batch_size=4, delay_ms=600_000, window=window)
        batcher = await started(handler, cfg, FixedCost(600.0))
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


class FixedCost(BatchCost):
    """A cost model that says every image takes ``seconds``, whatever the batches measure."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds_per_image = seconds

    def observe(self, size: int, seconds: float) -> None:
        pass


# (window, loaded, cap, collecting, queued, expected) -> seconds left to wait; times in ms for reading.
WINDOW_DECISIONS = [
    # idle (the last batch was a lone request): neither window waits, whatever the costs
    ("measured", False, 2.0, 0.0, 0.0, 50.0, 0.0),
    ("max-delay", False, 2.0, 0.0, 0.0, 50.0, 0.0),
    # measured: up to what the batch is expected to run, counted from its oldest request's queueing
    ("measured", True, 2.0, 0.0, 0.0, 0.3, 0.3),
    ("measured", True, 2.0, 0.1, 0.2, 0.3, 0.1),
    ("measured", True, 2.0, 0.0, 0.5, 0.3, -0.2),  # queued longer than the batch runs: run now
    ("measured", True, 2.0, 0.0, 0.5, 50.0, 1.5),  # a slow batch: the cap bounds the queueing
    ("measured", True, 2.0, 1.0, 2.5, 50.0, -0.5),
    ("measured", True, 2.0, 0.0, 0.0, None, 0.0),  # nothing measured yet: no basis to wait
    ("measured", True, 0.0, 0.0, 0.0, 50.0, 0.0),  # a cap of 0 never waits
    # max-delay: the whole cap from when collection began, whatever the batch costs or waited before
    ("max-delay", True, 2.0, 0.0, 5.0, 0.01, 2.0),
    ("max-delay", True, 2.0, 1.5, 5.0, 0.01, 0.5),
    ("max-delay", True, 2.0, 2.5, 0.0, None, -0.5),
    ("max-delay", True, 0.0, 0.0, 0.0, 50.0, 0.0),
]


@pytest.mark.parametrize(
    ("window", "loaded", "cap", "collecting", "queued", "expected", "left"), WINDOW_DECISIONS
)
def test_window_decisions(
    window: BatchWindow,
    loaded: bool,
    cap: float,
    collecting: float,
    queued: float,
    expected: float | None,
    left: float,
) -> None:
    got = window_left_s(
        window,
        loaded=loaded,
        cap_s=cap / 1000,
        collecting_s=collecting / 1000,
        queued_s=queued / 1000,
        expected_s=None if expected is None else expected / 1000,
    )
    assert got * 1000 == pytest.approx(left, abs=1e-9)


def test_batch_cost_is_a_moving_average_of_the_time_per_image() -> None:
    cost = BatchCost()
    assert cost.expected_s(8) is None
    cost.observe(4, 0.004)  # the first batch sets it: 1 ms per image
    assert cost.expected_s(8) == pytest.approx(0.008)
    cost.observe(1, 0.006)  # then 0.8 old + 0.2 new: 0.8 x 1 + 0.2 x 6 = 2 ms per image
    assert cost.expected_s(3) == pytest.approx(0.006)


class WaitRecorder:
    """A ``BatchObserver`` keeping what the window reports per batch."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def batch_ran(self, model: str, size: int, seconds: float) -> None:
        pass

    def queue_depth(self, model: str, depth: int) -> None:
        pass

    def window_waited(self, model: str, seconds: float) -> None:
        self.waits.append(seconds)


def _after_a_loaded_batch(window: BatchWindow, cost: BatchCost) -> tuple[list[list[list[int]]], list[float]]:
    """Two requests at once (a full batch of 2: the batcher is now under load), then one alone, then a
    second one a moment later, each awaited with a 30 s guard against a window that never ends. Returns the
    batches run and how long the window held each open."""

    async def scenario() -> tuple[list[list[list[int]]], list[float]]:
        handler, observer = Recorder(), WaitRecorder()
        cfg = config(max_batch_size=2, delay_ms=600_000, window=window)
        batcher = await started(handler, cfg, cost, observer)
        assert await asyncio.wait_for(asyncio.gather(batcher.submit([1]), batcher.submit([2])), 30) == [1, 2]
        third = asyncio.ensure_future(batcher.submit([3]))
        # Long enough for a batcher that does not wait to run the third alone; one that waits, waits.
        await asyncio.wait([third], timeout=0.1)
        assert await asyncio.wait_for(batcher.submit([4]), 30) == 4
        assert await third == 3
        await batcher.close()
        return handler.batches, observer.waits

    return asyncio.run(scenario())


def test_measured_window_waits_under_load_when_the_batch_runs_longer_than_its_queueing() -> None:
    # Expected 10 minutes a batch, a 10-minute cap: the third request waits, and the fourth joins it.
    assert _after_a_loaded_batch("measured", FixedCost(600.0))[0] == [[[1], [2]], [[3], [4]]]


def test_measured_window_does_not_wait_for_batches_that_run_in_no_time() -> None:
    # Expected 0 s a batch: the 10-minute cap does not matter, the third request runs alone at once.
    assert _after_a_loaded_batch("measured", FixedCost(0.0))[0] == [[[1], [2]], [[3]], [[4]]]


def test_max_delay_window_waits_under_load_however_cheap_the_batch() -> None:
    assert _after_a_loaded_batch("max-delay", FixedCost(0.0))[0] == [[[1], [2]], [[3], [4]]]


@pytest.mark.parametrize("window", ["measured", "max-delay"])
def test_the_window_setting_reaches_the_model_batchers(tmp_path: Path, window: BatchWindow) -> None:
    shutil.copytree(REPOSITORY / "lenet5-mnist", tmp_path / "lenet5-mnist")
    settings = Settings(repository=tmp_path, batch_window=window, max_queue_delay_ms=3.5)

    async def scenario() -> BatchConfig:
        registry = build_registry(settings, ServiceMetrics())
        registry.discover()
        await registry.load_all()
        config = registry.get("lenet5-mnist").serving().batcher.config
        await registry.close()
        return config

    config = asyncio.run(scenario())
    assert config.window == window and config.max_queue_delay_ms == 3.5


def test_the_window_reports_how_long_each_batch_waited() -> None:
    first, second = _after_a_loaded_batch("max-delay", FixedCost(0.0))[1]
    assert first == 0.0  # an idle batcher: the first batch is full at once
    assert 0.05 <= second < 30  # held open until the fourth request came, about 0.1 s later


def test_a_window_that_does_not_wait_reports_zero_for_every_batch() -> None:
    assert _after_a_loaded_batch("measured", FixedCost(0.0))[1] == [0.0, 0.0, 0.0]


def test_the_window_wait_reaches_the_metrics() -> None:
    metrics = ServiceMetrics()
    metrics.window_waited("m", 0.0)
    metrics.window_waited("m", 0.003)
    text = generate_latest(metrics.registry).decode()
    assert 'poolserve_batch_window_wait_seconds_bucket{le="0.0",model="m"} 1.0' in text
    assert 'poolserve_batch_window_wait_seconds_count{model="m"} 2.0' in text
    assert 'poolserve_batch_window_wait_seconds_sum{model="m"} 0.003' in text
