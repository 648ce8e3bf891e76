"""``run_sized``, the one rule for where a request's CPU-bound step runs (the loop or a thread), and
``decode_images`` under it: both places give the same tensors and the same errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest

from poolserve.repository.manifest import Manifest, Preprocessing
from poolserve.service.api.limits import RequestLimits
from poolserve.service.api.offload import DecodeSlots, decode_images, run_sized
from poolserve.service.errors import InvalidImage, QueueFull
from poolserve.service.settings import Settings
from tests.service.conftest import DATA, REPOSITORY


def _where() -> int:
    return threading.get_ident()


@pytest.mark.parametrize(
    ("size", "inline_max", "inline"),
    [(0, 0, True), (8192, 8192, True), (8193, 8192, False), (1, 0, False)],
)
def test_inline_up_to_the_threshold_and_a_worker_thread_past_it(
    size: int, inline_max: int, inline: bool
) -> None:
    async def main() -> tuple[int, int]:
        return threading.get_ident(), await run_sized(_where, size, inline_max)

    loop_thread, step_thread = asyncio.run(main())
    assert (step_thread == loop_thread) is inline


def test_the_thread_slot_is_held_while_the_step_runs_in_a_thread_and_only_then() -> None:
    held: list[bool] = []
    events: list[str] = []

    @asynccontextmanager
    async def slot() -> AsyncIterator[None]:
        events.append("enter")
        try:
            yield
        finally:
            events.append("exit")

    def step() -> str:
        held.append(events[-1:] == ["enter"])
        return "done"

    assert asyncio.run(run_sized(step, 10, 100, slot)) == "done" and events == []
    assert asyncio.run(run_sized(step, 1000, 100, slot)) == "done" and events == ["enter", "exit"]
    assert held == [False, True]


def test_an_error_in_the_step_reaches_the_caller_on_both_paths() -> None:
    def step() -> None:
        raise ValueError("bad input")

    for size in (1, 1000):
        with pytest.raises(ValueError, match="bad input"):
            asyncio.run(run_sized(step, size, 100))


def test_decode_slots_queue_up_to_their_bound_in_arrival_order_and_refuse_past_it() -> None:
    """Two slots, two waiting: of seven requests arriving while the slots are held, the first two decode
    at once, the next two wait and get a slot in arrival order as slots free up, the last three are
    refused with 503's error at once."""
    slots = DecodeSlots(2, queue_limit=2)
    order: list[int] = []
    release = asyncio.Event()

    async def request(i: int) -> str:
        try:
            async with slots.slot():
                order.append(i)
                await release.wait()
            return "decoded"
        except QueueFull as exc:
            assert exc.retry_after_s == 1 and "2 more wait" in str(exc)
            return "refused"

    async def main() -> list[str]:
        tasks = [asyncio.create_task(request(i)) for i in range(7)]
        await asyncio.sleep(0)  # every task reaches its slot() call
        assert order == [0, 1] and slots.waiting == 2
        release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == ["decoded"] * 4 + ["refused"] * 3
    assert order == [0, 1, 2, 3] and slots.waiting == 0


def test_a_request_cancelled_while_waiting_for_a_decode_slot_leaves_no_slot_taken() -> None:
    slots = DecodeSlots(1, queue_limit=4)

    async def main() -> None:
        hold = asyncio.Event()

        async def holder() -> None:
            async with slots.slot():
                await hold.wait()

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(holder())
        await asyncio.sleep(0)
        assert slots.waiting == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert slots.waiting == 0
        hold.set()
        await first
        async with slots.slot():  # the one slot is free again
            pass

    asyncio.run(main())


INLINE = Settings(repository=REPOSITORY)  # default threshold: a few digit PNGs are decoded inline
THREAD = Settings(repository=REPOSITORY, inline_decode_max_bytes=0)
LIMITS = RequestLimits.of(INLINE)


def _spec(model: str) -> Preprocessing:
    manifest = Manifest.model_validate_json((REPOSITORY / model / "1" / "manifest.json").read_bytes())
    return manifest.preprocessing


def test_digits_are_small_enough_to_decode_inline() -> None:
    blobs = [p.read_bytes() for p in sorted((DATA / "digits").glob("*.png"))[:8]]
    assert sum(map(len, blobs)) <= INLINE.inline_decode_max_bytes


@pytest.mark.parametrize("model", ["lenet5-mnist", "digits-roialign"])
def test_both_paths_give_identical_tensors_and_transforms(model: str) -> None:
    spec = _spec(model)
    blobs = [p.read_bytes() for p in sorted((DATA / "digits").glob("*.png"))[:8]]
    blobs.append((DATA / "canvases" / "canvas_0.png").read_bytes())
    inline = asyncio.run(decode_images(blobs, spec, LIMITS, INLINE))
    threaded = asyncio.run(decode_images(blobs, spec, LIMITS, THREAD))
    assert np.array_equal(inline[0], threaded[0]) and inline[1] == threaded[1]


def test_both_paths_name_the_bad_image() -> None:
    spec = _spec("lenet5-mnist")
    blobs = [(DATA / "digits" / "0_0.png").read_bytes(), b"not an image"]
    details = []
    for settings in (INLINE, THREAD):
        with pytest.raises(InvalidImage) as caught:
            asyncio.run(decode_images(blobs, spec, LIMITS, settings))
        details.append(caught.value.detail)
    assert details[0] == details[1] and details[0].startswith("images[1]")
