"""Parity inputs: random tensors and real held-out data, at every batch size and box count we promise."""

from __future__ import annotations

import numpy as np

from poolserve.export.verify import BATCH_SIZES, BOX_COUNTS, InputCase
from poolserve.models.canvas import Canvas
from poolserve.models.mnist import MNIST_MEAN, MNIST_STD

CASE_SEED = 7


def normalized_digits(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 digits -> (n, 1, 28, 28) float32, normalized as the manifests say."""
    scaled = images.astype(np.float32) / np.float32(255.0)
    return ((scaled - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD))[:, None].astype(np.float32)


def random_boxes(
    rng: np.random.Generator, count: int, batch: int, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of every kind: inside, crossing the border, tiny, degenerate; any image of the batch.
    ``size`` is the square frame's side, or ``(height, width)``."""
    # per axis (x, y) for a rectangular frame; a square one keeps its scalar (and its drawn numbers)
    frame: float | np.ndarray = size if isinstance(size, int) else np.asarray([size[1], size[0]], np.float64)
    corner = rng.uniform(-0.2 * frame, 1.1 * frame, size=(count, 2))
    extent = rng.uniform(0, 0.6 * frame, size=(count, 2)) * (rng.uniform(size=(count, 1)) > 0.1)
    boxes = np.concatenate([corner, corner + extent], axis=1).astype(np.float32)
    return boxes, rng.integers(0, batch, size=count).astype(np.int64)


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
