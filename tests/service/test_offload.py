"""``run_sized``, the one rule for where a request's CPU-bound step runs (the loop or a thread), and
``decode_images`` under it: both places give the same tensors and the same errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from poolserve.repository.manifest import Manifest, Preprocessing
from poolserve.service.api.limits import RequestLimits
from poolserve.service.api.offload import decode_images, run_sized
from poolserve.service.errors import InvalidImage
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

    @contextmanager
    def slot() -> Iterator[None]:
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
