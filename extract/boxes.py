"""The one place extraction checks an image's boxes, before anything reaches onnxruntime.

It applies the ``/v1/.../features`` route's own checks (shape and count from the parser, then the
service's RoI input check, ``poolserve.service.runtime.region_inputs``), so a box the endpoint refuses
is refused here with the same message. Every engine's per-image path calls ``check_image_boxes`` and
nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poolserve.service.api.payloads import boxes_array, check_boxes
from poolserve.service.errors import InvalidField
from poolserve.service.runtime.region_inputs import BoxFrame, check_region_inputs


def check_image_boxes(raw: list[Any], size: tuple[int, int], max_boxes: int) -> np.ndarray:
    """One image's boxes as the box file gave them, checked against its decoded ``(width, height)``.

    Returns (k, 4) float32 x1 y1 x2 y2 in original pixels; raises the service's ``InvalidField`` or
    ``LimitExceeded``. Messages name ``boxes[0][j]``, as the endpoint does for a one-image request.
    The box policy is checked in the image's own pixels: the resize to the model input scales each axis
    by a positive factor, so a box within the policy here is within it in the input frame too.
    """
    boxes = boxes_array(raw, "boxes[0]")
    check_boxes([boxes], max_boxes)
    _refuse_infinity(boxes)
    check_region_inputs(
        boxes,
        np.zeros(len(boxes), np.int64),
        1,
        BoxFrame(*size),
        lambda row: f"boxes[0][{row}] {[float(v) for v in boxes[row]]}",
    )
    return boxes.astype(np.float32)  # within the image's margin, so float32 holds every one


def _refuse_infinity(boxes: np.ndarray) -> None:
    """A box file's JSON may hold ``Infinity``, which no JSON request to ``/v1`` can: the service's check
    would call such a box inverted or oversized, so say what it is, as it says of NaN."""
    rows = np.flatnonzero(np.isinf(boxes).any(axis=1))
    if len(rows):
        row = int(rows[0])
        where = f"boxes[0][{row}] {[float(v) for v in boxes[row]]}"
        raise InvalidField(f"{where} holds an infinite number; expected finite numbers")
