"""Where a request's images are decoded: on the event loop when they are small, else in a worker thread,
and how many requests may be decoding in threads at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

import numpy as np
from starlette.concurrency import run_in_threadpool

from poolserve.repository.manifest import Preprocessing
from poolserve.service.errors import QueueFull
from poolserve.service.imaging.preprocess import ResizeTransform, decode_and_preprocess
from poolserve.service.settings import Settings


class DecodeSlots:
    """At most ``limit`` requests decode in worker threads at once; one more is refused, not queued.

    Refusing (503 + ``Retry-After``) rather than queueing keeps a burst of large images from stacking up
    seconds of CPU work behind which every later request would wait. Used on the event loop only.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            raise QueueFull(
                f"the server is decoding {self.limit} requests' images already; retry shortly",
                retry_after_s=1,
            )
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


# The app's slots, set for each request by ``RequestGuard``: request-scoped, like the request itself.
current_decode_slots: ContextVar[DecodeSlots | None] = ContextVar("decode_slots", default=None)


async def decode_images(
    blobs: list[bytes], spec: Preprocessing, settings: Settings
) -> tuple[np.ndarray, list[ResizeTransform]]:
    """``decode_and_preprocess``, off the loop unless the images are small.

    A 28x28 digit PNG decodes in ~0.1 ms, less than the thread hand-off and wake-up it would take; a
    photo takes milliseconds, which would stall every other request on the loop. The encoded size is a
    cheap, conservative proxy for the decode's cost, known before any work is done.
    """
    decode = partial(
        decode_and_preprocess,
        blobs,
        spec,
        settings.max_image_pixels,
        settings.max_request_pixels,
        settings.reduced_jpeg_decode,
        settings.max_request_input_pixels,
    )
    if sum(len(b) for b in blobs) <= settings.inline_decode_max_bytes:
        return decode()
    slots = current_decode_slots.get()
    if slots is None:  # the app outside its middleware stack (a bare router in a test): no bound
        return await run_in_threadpool(decode)
    with slots.slot():
        return await run_in_threadpool(decode)
