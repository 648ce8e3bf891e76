"""Boxes on canvases for training and evaluating the region models (numpy only).

A detector does not hand over ink-tight boxes: its boxes are loose (up to ~1.5x the ink box per side),
shifted, or cut (up to ~20% of the digit left out). Training sees all of those, labelled with the digit
they were drawn from, and background boxes, which hold at most a sliver of any digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from poolserve.models.canvas import Canvas, box_area, box_intersection, box_iou

BACKGROUND_CLASS = 10
# A box keeps its digit's label while it covers this much of the digit's ink box...
POSITIVE_COVERAGE = 0.75
# ...and covers less than this much of any other digit's; otherwise it is ambiguous and not used.
OTHER_DIGIT_COVERAGE = 0.5
# A background box covers at most this much of any digit's ink box.
BACKGROUND_COVERAGE = 0.2
DETECTOR_BOXES_PER_DIGIT = 3
BACKGROUNDS_PER_CANVAS = 5
LOOSE = (1.0, 1.55)  # training: box side / ink side
CUT = 0.2  # training: at most this fraction of a side cut off
SHIFT = 0.15  # training: centre moved by up to this fraction of the side
_TRIES = 30


@dataclass(frozen=True)
class LabelledBoxes:
    boxes: NDArray[np.float32]  # (K, 4)
    labels: NDArray[np.int64]  # (K,), BACKGROUND_CLASS for background


def coverage(boxes: NDArray[np.float32], targets: NDArray[np.float32]) -> NDArray[np.float32]:
    """Fraction of each target's area inside each box, (K, 4) x (M, 4) -> (K, M)."""
    inter = box_intersection(boxes, targets)
    return (inter / np.maximum(box_area(targets)[None, :], 1e-9)).astype(np.float32)


def _clipped(box: NDArray[np.float64], size: int) -> NDArray[np.float32]:
    return np.clip(box, 0, size).astype(np.float32)


def detector_box(box: NDArray[np.float32], rng: np.random.Generator, size: int) -> NDArray[np.float32]:
    """The ink box made loose, shifted and sometimes cut on one side, as a detector would give it."""
    width, height = float(box[2] - box[0]), float(box[3] - box[1])
    new_w, new_h = width * rng.uniform(*LOOSE), height * rng.uniform(*LOOSE)
    cx = (box[0] + box[2]) / 2 + rng.uniform(-SHIFT, SHIFT) * width
    cy = (box[1] + box[3]) / 2 + rng.uniform(-SHIFT, SHIFT) * height
    out = np.array([cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2])
    if rng.uniform() < 0.3:  # cut: one side moved inside the ink box
        side = int(rng.integers(4))
        extent = width if side in (0, 2) else height
        inward = 1.0 if side < 2 else -1.0
        out[side] = box[side] + inward * rng.uniform(0, CUT) * extent
    return _clipped(out, size)


def loose_box(
    box: NDArray[np.float32], rng: np.random.Generator, size: int, looseness: tuple[float, float]
) -> NDArray[np.float32]:
    """A box ``looseness`` times the ink box per side, placed at random so that it still holds all ink
    (then clipped to the canvas)."""
    width, height = float(box[2] - box[0]), float(box[3] - box[1])
    new_w, new_h = width * rng.uniform(*looseness), height * rng.uniform(*looseness)
    x1 = box[0] - rng.uniform(0, new_w - width)
    y1 = box[1] - rng.uniform(0, new_h - height)
    return _clipped(np.array([x1, y1, x1 + new_w, y1 + new_h]), size)


def _free_box(
    canvas: Canvas, rng: np.random.Generator, sides: tuple[float, float], max_coverage: float
) -> NDArray[np.float32] | None:
    size = canvas.image.shape[0]
    for _ in range(_TRIES):
        w, h = rng.uniform(*sides, size=2)
        x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
        box = np.array([x, y, x + w, y + h], dtype=np.float32)
        if len(canvas.boxes) == 0 or coverage(box[None], canvas.boxes).max() <= max_coverage:
            return box
    return None


def empty_boxes(canvas: Canvas, rng: np.random.Generator, count: int) -> NDArray[np.float32]:
    """Up to ``count`` boxes (12..48 px a side) that overlap no digit's ink box at all."""
    found = [_free_box(canvas, rng, (12.0, 48.0), 0.0) for _ in range(count)]
    return np.array([b for b in found if b is not None], dtype=np.float32).reshape(-1, 4)


def training_boxes(canvas: Canvas, rng: np.random.Generator) -> LabelledBoxes:
    """True boxes, detector-like boxes around each digit, and background boxes."""
    size = canvas.image.shape[0]
    boxes = [*canvas.boxes]
    labels = [*canvas.labels.tolist()]
    for index, (box, label) in enumerate(zip(canvas.boxes, canvas.labels, strict=True)):
        for _ in range(DETECTOR_BOXES_PER_DIGIT):
            candidate = detector_box(box, rng, size)
            covered = coverage(candidate[None], canvas.boxes)[0]
            others = np.delete(covered, index)
            own_iou = box_iou(candidate[None], box[None])[0, 0]
            if (
                covered[index] >= POSITIVE_COVERAGE
                and own_iou > 0.3
                and not (others >= OTHER_DIGIT_COVERAGE).any()
            ):
                boxes.append(candidate)
                labels.append(int(label))
    for _ in range(BACKGROUNDS_PER_CANVAS):
        background = _free_box(canvas, rng, (8.0, 56.0), BACKGROUND_COVERAGE)
        if background is not None:
            boxes.append(background)
            labels.append(BACKGROUND_CLASS)
    return LabelledBoxes(np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64))
