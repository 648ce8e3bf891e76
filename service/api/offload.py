"""Where a request's CPU-bound steps run: on the event loop when their input is small, else in a thread.

One rule (``run_sized``) for every route family: ``/v1`` decoding images (``decode_images``), ``/v2``
parsing and encoding tensors. A step over at most ``inline_max_bytes`` of input runs inline, because
handing it to a thread and back costs more than the step itself (a 28x28 digit PNG decodes in less);
anything bigger would stall every other request on the loop while it ran. The input's size in bytes is
a cheap, conservative proxy for the step's cost, known before any work is done. How many requests may
be decoding images in threads at once is bounded too (``DecodeSlots``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from functools import partial
from typing import TypeVar

import numpy as np
from starlette.concurrency import run_in_threadpool

from poolserve.repository.manifest import Preprocessing
from poolserve.service.api.limits import RequestLimits
from poolserve.service.errors import QueueFull
from poolserve.service.imaging.preprocess import ResizeTransform, decode_and_preprocess
from poolserve.service.settings import Settings

T = TypeVar("T")


async def run_sized(
    step: Callable[[], T],
    size_bytes: int,
    inline_max_bytes: int,
    thread_slot: Callable[[], AbstractAsyncContextManager[None]] | None = None,
) -> T:
    """``step()`` on the loop if ``size_bytes <= inline_max_bytes``, else in a worker thread, holding
    ``thread_slot()`` (when given) while it runs there."""
    if size_bytes <= inline_max_bytes:
        return step()
    if thread_slot is None:
        return await run_in_threadpool(step)
    async with thread_slot():
        return await run_in_threadpool(step)


class DecodeSlots:
    """At most ``limit`` requests decode in worker threads at once, and at most ``queue_limit`` more wait
    for a slot, first come first served; one past that is refused (503 + ``Retry-After``), not queued.

    Waiting serves ordinary concurrency (a client with eight connections uploading photos should not see
    503s on two cores), while the bound on waiting keeps a burst of large images from stacking up more
    CPU work than the request time limit could ever see done. Used on the event loop only.
    """

    def __init__(self, limit: int, queue_limit: int = 0) -> None:
        self.limit, self.queue_limit = limit, queue_limit
        self.waiting = 0
        self._free = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._free.locked() and self.waiting >= self.queue_limit:
            raise QueueFull(
                f"the server is decoding {self.limit} requests' images already and {self.waiting} more "
                "wait; retry shortly",
                retry_after_s=1,
            )
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._free.release()


# The app's slots, set for each request by ``RequestGuard``: request-scoped, like the request itself.
current_decode_slots: ContextVar[DecodeSlots | None] = ContextVar("decode_slots", default=None)


async def decode_images(
    blobs: list[bytes], spec: Preprocessing, limits: RequestLimits, settings: Settings
) -> tuple[np.ndarray, list[ResizeTransform]]:
    """``decode_and_preprocess`` within ``limits``, placed by ``run_sized`` on their encoded size (in a
    thread, it holds a decode slot)."""
    decode = partial(
        decode_and_preprocess,
        blobs,
        spec,
        limits.max_image_pixels,
        limits.max_request_pixels,
        settings.reduced_jpeg_decode,
        limits.max_request_input_pixels,
    )
    slots = current_decode_slots.get()  # None: outside the app's middleware (a bare router in a test)
    size = sum(len(b) for b in blobs)
    return await run_sized(
        decode, size, settings.inline_decode_max_bytes, slots.slot if slots is not None else None
    )
