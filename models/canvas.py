"""Canvases for the region models: MNIST digits pasted at random positions and scales (numpy + Pillow).

Boxes are ``x1, y1, x2, y2`` in canvas pixels, pixel-edge convention (a digit whose ink covers columns
3..9 has x1=3, x2=10): the tight box around the scaled digit's ink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from models.mnist import DigitSplit

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


def box_iou(boxes: NDArray[np.float32], others: NDArray[np.float32]) -> NDArray[np.float32]:
    """Pairwise IoU, (K, 4) x (M, 4) -> (K, M)."""
    x1 = np.maximum(boxes[:, None, 0], others[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], others[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], others[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], others[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_b = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
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


def compose_canvas(digits: DigitSplit, rng: np.random.Generator, size: int = CANVAS_SIZE) -> Canvas:
    """One canvas with 1..MAX_DIGITS digits drawn from ``digits``; pixels combine by maximum."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    boxes: list[list[float]] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
        index = int(rng.integers(len(digits)))
        patch = _scaled_digit(digits.images[index], int(rng.integers(MIN_DIGIT_SIZE, MAX_DIGIT_SIZE + 1)))
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
