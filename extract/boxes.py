"""The one place extraction checks an image's boxes, before anything reaches onnxruntime.

It applies the ``/v1/.../features`` route's own checks (shape, finite, ordered, count, overlapping the
image), so a box the endpoint refuses is refused here with the same message. Every engine's per-image
path calls ``check_image_boxes`` and nothing else; the service's shared validator replaces its body.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.api.payloads import RequestLimits, _boxes_array, _check_boxes, check_boxes_overlap


def check_image_boxes(raw: list[Any], size: tuple[int, int], max_boxes: int) -> np.ndarray:
    """One image's boxes as the box file gave them, checked against its decoded ``(width, height)``.

    Returns (k, 4) float32 x1 y1 x2 y2 in original pixels; raises the service's ``InvalidField`` or
    ``LimitExceeded``. Messages name ``boxes[0]``, as the endpoint does for a one-image request.
    """
    boxes = _boxes_array(raw, "boxes[0]")
    _check_boxes([boxes], RequestLimits(max_images=1, max_boxes=max_boxes, max_body_bytes=0))
    check_boxes_overlap([boxes], [size])
    return boxes
