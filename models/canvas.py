"""Canvases for the region models: MNIST digits pasted at random positions and scales (numpy + Pillow).

Boxes are ``x1, y1, x2, y2`` in canvas pixels, pixel-edge convention (a digit whose ink covers columns
3..9 has x1=3, x2=10): the tight box around the scaled digit's ink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from poolserve.models.distortions import DistortionRanges, reshape_digit, restyle
from poolserve.models.mnist import DigitSplit

CANVAS_SIZE = 112
MIN_DIGIT_SIZE = 20
MAX_DIGIT_SIZE = 44
MAX_DIGITS = 4
INK_THRESHOLD = 32
# Pasted digits may touch but not overlap much; a crowded canvas retries elsewhere.
MAX_PLACEMENT_IOU = 0.05
_PLACEMENT_TRIES = 20


@dataclass(frozen=True)
class Canvas:
    image: NDArray[np.uint8]  # (H, W)
    boxes: NDArray[np.float32]  # (K, 4)
    labels: NDArray[np.int64]  # (K,)


def box_area(boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_intersection(boxes: NDArray[np.float32], others: NDArray[np.float32]) -> NDArray[np.float32]:
    """Pairwise intersection areas, (K, 4) x (M, 4) -> (K, M)."""
    x1 = np.maximum(boxes[:, None, 0], others[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], others[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], others[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], others[None, :, 3])
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def box_iou(boxes: NDArray[np.float32], others: NDArray[np.float32]) -> NDArray[np.float32]:
    """Pairwise IoU, (K, 4) x (M, 4) -> (K, M)."""
    inter = box_intersection(boxes, others)
    union = box_area(boxes)[:, None] + box_area(others)[None, :] - inter
    return (inter / np.maximum(union, 1e-9)).astype(np.float32)


def _scaled_digit(image: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _ink_box(patch: NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero((patch > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((patch > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# Changes a 28x28 digit before it is scaled and pasted (poolserve.models.distortions.reshape_digit, say).
DigitReshaper = Callable[[NDArray[np.uint8], np.random.Generator], NDArray[np.uint8]]


def compose_canvas(
    digits: DigitSplit,
    rng: np.random.Generator,
    size: int = CANVAS_SIZE,
    digit_sizes: tuple[int, int] = (MIN_DIGIT_SIZE, MAX_DIGIT_SIZE),
    reshape: DigitReshaper | None = None,
) -> Canvas:
    """One canvas with 1..MAX_DIGITS digits drawn from ``digits``, each ``digit_sizes`` pixels square
    (inclusive; the 28x28 frame, ink included), optionally reshaped first; pixels combine by maximum.
    Without ``reshape`` the random draws are the same as they always were, so canvases stay stable."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    boxes: list[list[float]] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
        index = int(rng.integers(len(digits)))
        image = digits.images[index] if reshape is None else reshape(digits.images[index], rng)
        patch = _scaled_digit(image, int(rng.integers(digit_sizes[0], digit_sizes[1] + 1)))
        ink = _ink_box(patch)
        if ink is None:
            continue
        for _ in range(_PLACEMENT_TRIES):
            top, left = (int(v) for v in rng.integers(0, size - patch.shape[0] + 1, size=2))
            box = np.array([[left + ink[0], top + ink[1], left + ink[2], top + ink[3]]], dtype=np.float32)
            if boxes and box_iou(box, np.array(boxes, dtype=np.float32)).max() > MAX_PLACEMENT_IOU:
                continue
            region = canvas[top : top + patch.shape[0], left : left + patch.shape[1]]
            np.maximum(region, patch, out=region)
            boxes.append(box[0].tolist())
            labels.append(int(digits.labels[index]))
            break
    return Canvas(
        image=canvas,
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.array(labels, dtype=np.int64),
    )


def compose_canvases(digits: DigitSplit, count: int, seed: int, size: int = CANVAS_SIZE) -> list[Canvas]:
    rng = np.random.default_rng(seed)
    return [compose_canvas(digits, rng, size) for _ in range(count)]


def distorted_canvas(
    digits: DigitSplit,
    rng: np.random.Generator,
    ranges: DistortionRanges,
    digit_sizes: tuple[int, int] = (MIN_DIGIT_SIZE, MAX_DIGIT_SIZE),
    size: int = CANVAS_SIZE,
) -> Canvas:
    """A canvas whose digits are each reshaped, then restyled together as one scanned page; the boxes
    are the reshaped digits' ink boxes (found before restyling, which moves no ink)."""
    untouched = ranges.untouched and rng.uniform() < ranges.untouched
    reshaper = None if untouched else lambda image, r: reshape_digit(image, r, ranges)
    canvas = compose_canvas(digits, rng, size, digit_sizes, reshaper)
    if untouched:
        return canvas
    page = restyle(canvas.image, rng, ranges, digit_size=sum(digit_sizes) // 2)
    return Canvas(image=page, boxes=canvas.boxes, labels=canvas.labels)
