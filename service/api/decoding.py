"""Where a request's images are decoded: on the event loop when they are small, else in a worker thread."""

from __future__ import annotations

import numpy as np
from starlette.concurrency import run_in_threadpool

from repository.manifest import Preprocessing
from service.imaging.preprocess import ResizeTransform, decode_and_preprocess
from service.settings import Settings


async def decode_images(
    blobs: list[bytes], spec: Preprocessing, settings: Settings
) -> tuple[np.ndarray, list[ResizeTransform]]:
    """``decode_and_preprocess``, off the loop unless the images are small.

    A 28x28 digit PNG decodes in ~0.1 ms, less than the thread hand-off and wake-up it would take; a
    photo takes milliseconds, which would stall every other request on the loop. The encoded size is a
    cheap, conservative proxy for the decode's cost, known before any work is done.
    """
    if sum(len(b) for b in blobs) <= settings.inline_decode_max_bytes:
        return decode_and_preprocess(blobs, spec, settings.max_image_pixels)
    return await run_in_threadpool(decode_and_preprocess, blobs, spec, settings.max_image_pixels)
