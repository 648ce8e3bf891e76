"""Parity inputs of the digit models: random tensors and real held-out data, at every batch size and box
count we promise."""

from __future__ import annotations

import numpy as np

from poolserve.export.parity import BATCH_SIZES, BOX_COUNTS, InputCase, random_boxes
from poolserve.models.canvas import Canvas
from poolserve.models.mnist import normalized_digits

CASE_SEED = 7


def classifier_cases(test_images: np.ndarray, size: int) -> list[InputCase]:
    rng = np.random.default_rng(CASE_SEED)
    cases: list[InputCase] = []
    for batch in BATCH_SIZES:
        cases.append({"images": rng.standard_normal((batch, 1, size, size)).astype(np.float32)})
        cases.append({"images": normalized_digits(test_images[:batch])})
    return cases


def region_cases(canvases: list[Canvas], size: int) -> list[InputCase]:
    rng = np.random.default_rng(CASE_SEED)
    cases: list[InputCase] = []
    for batch in BATCH_SIZES:
        for count in BOX_COUNTS:
            images = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
            boxes, indices = random_boxes(rng, count, batch, size)
            cases.append({"images": images, "boxes": boxes, "box_batch_indices": indices})
            real = canvases[:batch]
            true_boxes = np.concatenate([c.boxes for c in real])
            true_indices = np.concatenate(
                [np.full(len(c.boxes), i, dtype=np.int64) for i, c in enumerate(real)]
            )
            extra_boxes, extra_indices = random_boxes(rng, max(count - len(true_boxes), 0), batch, size)
            cases.append(
                {
                    "images": normalized_digits(np.stack([c.image for c in real])),
                    "boxes": np.concatenate([true_boxes, extra_boxes])[:count],
                    "box_batch_indices": np.concatenate([true_indices, extra_indices])[:count],
                }
            )
    return cases
