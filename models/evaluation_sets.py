"""The fixed evaluation sets, built only from the held-out test split (numpy + Pillow, torch-free).

- held-out: the test digits as they are; canvases of them with ink-tight boxes.
- shifted held-out: the same test digits under :data:`poolserve.models.distortions.SHIFTED` (wider ranges than
  training uses); canvases of them, restyled as one page, with loose boxes (1.15-1.5x the ink box per
  side, placed at random around the ink).
- empty boxes: boxes on each canvas that overlap no digit, for the background class's false positives.

Seeds and ranges are constants: the sets are the same on every run and every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from poolserve.models.canvas import Canvas, compose_canvases, distorted_canvas
from poolserve.models.distortions import SHIFTED, distort_digits
from poolserve.models.mnist import DigitSplit
from poolserve.models.region_boxes import empty_boxes, loose_box

HELD_OUT_CANVASES = 300
HELD_OUT_CANVAS_SEED = 2
SHIFTED_SEED = 20261129
SHIFTED_CANVAS_SEED = 20261130
SHIFTED_DIGIT_SIZES = (18, 52)  # training canvases use 20..44
SHIFTED_LOOSENESS = (1.15, 1.5)
EMPTY_BOX_SEED = 20261131
EMPTY_BOXES_PER_CANVAS = 4


@dataclass(frozen=True)
class RegionSet:
    """Canvases, the boxes sent for each (one per digit, in label order) and boxes on empty areas."""

    canvases: list[Canvas]
    boxes: list[NDArray[np.float32]]
    empty: list[NDArray[np.float32]]

    @property
    def labels(self) -> NDArray[np.int64]:
        return np.concatenate([c.labels for c in self.canvases])


def _with_empty_boxes(canvases: list[Canvas], boxes: list[NDArray[np.float32]]) -> RegionSet:
    rng = np.random.default_rng(EMPTY_BOX_SEED)
    return RegionSet(canvases, boxes, [empty_boxes(c, rng, EMPTY_BOXES_PER_CANVAS) for c in canvases])


def held_out_canvases(test: DigitSplit, count: int = HELD_OUT_CANVASES) -> list[Canvas]:
    """Canvases of held-out digits with their ink-tight boxes."""
    return compose_canvases(test, count, HELD_OUT_CANVAS_SEED)


def held_out_regions(test: DigitSplit, count: int = HELD_OUT_CANVASES) -> RegionSet:
    canvases = held_out_canvases(test, count)
    return _with_empty_boxes(canvases, [c.boxes for c in canvases])


def shifted_digits(test: DigitSplit) -> DigitSplit:
    """Every held-out digit once, distorted with the shifted ranges."""
    images = distort_digits(test.images, np.random.default_rng(SHIFTED_SEED), SHIFTED)
    return DigitSplit(images=images, labels=test.labels.copy())


def shifted_regions(test: DigitSplit, count: int = HELD_OUT_CANVASES) -> RegionSet:
    """Canvases of shifted held-out digits, sent with loose boxes."""
    rng = np.random.default_rng(SHIFTED_CANVAS_SEED)
    canvases = [distorted_canvas(test, rng, SHIFTED, SHIFTED_DIGIT_SIZES) for _ in range(count)]
    size = canvases[0].image.shape[0] if canvases else 0
    loose = [
        np.array([loose_box(b, rng, size, SHIFTED_LOOSENESS) for b in c.boxes], np.float32).reshape(-1, 4)
        for c in canvases
    ]
    return _with_empty_boxes(canvases, loose)
