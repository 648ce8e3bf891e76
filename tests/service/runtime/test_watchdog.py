"""The watchdog's parts, without clocks: overdue is computed from a ``now`` the test passes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from poolserve.service.errors import ModelNotReady
from poolserve.service.runtime.watchdog import ModelGuard, TimedHandler, WatchdogConfig

CONFIG = WatchdogConfig(min_s=10.0, factor=20.0, exit_after_s=30.0)


class Gated:
    """Items are image counts; ``run`` waits for the gate, so a batch stays in progress while we look."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def size(self, item: int) -> int:
        return item

    def run(self, items: Sequence[int]) -> list[int]:
        self.gate.wait(10)
        return list(items)


def run_in_background(handler: TimedHandler[int, int], items: list[int]) -> threading.Thread:
    thread = threading.Thread(target=handler.run, args=(items,))
    thread.start()
    while not handler.busy:
        time.sleep(0.001)
    return thread


def test_a_batch_is_overdue_past_the_floor_before_any_measurement() -> None:
    inner = Gated()
    handler: TimedHandler[int, int] = TimedHandler(inner)
    assert handler.overdue_s(CONFIG, time.monotonic() + 1000) is None  # nothing running
    thread = run_in_background(handler, [2, 3])
    started = time.monotonic()
    try:
        assert handler.overdue_s(CONFIG, started + 5) is None
        elapsed = handler.overdue_s(CONFIG, started + 11)
        assert elapsed is not None and elapsed > 10
    finally:
        inner.gate.set()
        thread.join()
    assert not handler.busy


def test_past_the_floor_the_limit_is_factor_times_the_measured_time_per_image() -> None:
    inner = Gated()
    handler: TimedHandler[int, int] = TimedHandler(inner)
    handler._cost.seconds_per_image = 0.5  # as if measured: 20 x 0.5 s x 4 images = 40 s for the next batch
    thread = run_in_background(handler, [4])
    started = time.monotonic()
    try:
        assert handler.overdue_s(CONFIG, started + 30) is None
        assert handler.overdue_s(CONFIG, started + 41) is not None
    finally:
        inner.gate.set()
        thread.join()


def test_a_finished_batch_updates_the_measured_time_per_image() -> None:
    inner = Gated()
    inner.gate.set()
    handler: TimedHandler[int, int] = TimedHandler(inner)
    assert handler.run([1, 2]) == [1, 2]
    assert handler._cost.seconds_per_image is not None and handler._cost.seconds_per_image >= 0


def test_a_stall_answers_every_waiter_503_with_retry_after_and_refuses_new_ones() -> None:
    async def scenario() -> list[BaseException | int]:
        guard: ModelGuard[int, int] = ModelGuard("m", TimedHandler(Gated()))
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def submit(item: int) -> int:
            return await never

        waiters = [asyncio.ensure_future(guard.run(submit, i)) for i in range(3)]
        await asyncio.sleep(0)
        guard.declare_stalled()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        with pytest.raises(ModelNotReady):
            await guard.run(submit, 9)
        return results

    for result in asyncio.run(scenario()):
        assert isinstance(result, ModelNotReady)
        assert result.retry_after_s == 5
        assert "stopped responding" in result.detail


def test_cancels_that_are_not_the_guards_stay_cancels() -> None:
    async def scenario() -> None:
        guard: ModelGuard[int, int] = ModelGuard("m", TimedHandler(Gated()))
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def submit(item: int) -> int:
            return await never

        waiter = asyncio.ensure_future(guard.run(submit, 1))
        await asyncio.sleep(0)
        waiter.cancel()  # a client that went away, or the request time limit
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(scenario())


def test_requests_cancelled_at_the_end_of_a_shutdown_answer_503() -> None:
    async def scenario() -> BaseException | int:
        guard: ModelGuard[int, int] = ModelGuard("m", TimedHandler(Gated()))
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def submit(item: int) -> int:
            return await never

        waiter = asyncio.ensure_future(guard.run(submit, 1))
        await asyncio.sleep(0)
        guard.shutting_down = True
        waiter.cancel()  # what uvicorn does to requests still running when its grace period ends
        (result,) = await asyncio.gather(waiter, return_exceptions=True)
        return result

    result = asyncio.run(scenario())
    assert isinstance(result, ModelNotReady)
    assert result.detail == "the server is shutting down"
