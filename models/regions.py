"""Labelled boxes on canvases for training and evaluating the region models (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.canvas import Canvas, box_iou

BACKGROUND_CLASS = 10
POSITIVE_IOU = 0.5
BACKGROUND_IOU = 0.3
JITTERED_PER_DIGIT = 2
BACKGROUNDS_PER_CANVAS = 4
_TRIES = 30


@dataclass(frozen=True)
class LabelledBoxes:
    boxes: NDArray[np.float32]  # (K, 4)
    labels: NDArray[np.int64]  # (K,), BACKGROUND_CLASS for background


def _jitter(box: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    width, height = box[2] - box[0], box[3] - box[1]
    cx = (box[0] + box[2]) / 2 + rng.uniform(-0.15, 0.15) * width
    cy = (box[1] + box[3]) / 2 + rng.uniform(-0.15, 0.15) * height
    width *= rng.uniform(0.8, 1.25)
    height *= rng.uniform(0.8, 1.25)
    return np.array([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], dtype=np.float32)


def _background(canvas: Canvas, rng: np.random.Generator) -> NDArray[np.float32] | None:
    size = canvas.image.shape[0]
    for _ in range(_TRIES):
        w, h = rng.uniform(8, 48, size=2)
        x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
        box = np.array([x, y, x + w, y + h], dtype=np.float32)
        if len(canvas.boxes) == 0 or box_iou(box[None], canvas.boxes).max() < BACKGROUND_IOU:
            return box
    return None


def training_boxes(canvas: Canvas, rng: np.random.Generator) -> LabelledBoxes:
    """True boxes, jittered copies (IoU >= 0.5 keeps the digit's label) and background boxes (IoU < 0.3)."""
    boxes = [*canvas.boxes]
    labels = [*canvas.labels.tolist()]
    for box, label in zip(canvas.boxes, canvas.labels, strict=True):
        for _ in range(JITTERED_PER_DIGIT):
            jittered = _jitter(box, rng)
            if box_iou(jittered[None], box[None])[0, 0] >= POSITIVE_IOU:
                boxes.append(jittered)
                labels.append(int(label))
    for _ in range(BACKGROUNDS_PER_CANVAS):
        background = _background(canvas, rng)
        if background is not None:
            boxes.append(background)
            labels.append(BACKGROUND_CLASS)
    return LabelledBoxes(np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64))
