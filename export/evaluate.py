"""Quality figures of an exported model, measured with onnxruntime on the committed ONNX file.

Every figure comes from the held-out test split only (``poolserve.models.evaluation_sets``): as drawn, and
shifted
(wider distortions than training, loose boxes). What :func:`measure` returns is what a manifest records
and what ``poolserve verify`` re-measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from poolserve.models.evaluation_sets import RegionSet, held_out_regions, shifted_digits, shifted_regions
from poolserve.models.mnist import DigitSplit, normalized_digits
from poolserve.models.region_boxes import BACKGROUND_CLASS

_CHUNK = 250
_CANVAS_CHUNK = 50

HELD_OUT_SPLIT = "held-out test (1,000 images, 100 per digit; poolserve.models.mnist.held_out_split)"
SHIFTED_SPLIT = (
    "shifted held-out test: the same 1,000 images under poolserve.models.distortions.SHIFTED "
    "(poolserve.models.evaluation_sets, fixed seeds)"
)


@dataclass(frozen=True)
class Accuracy:
    value: float
    samples: int


@dataclass(frozen=True)
class Figure:
    """One measured quality figure, named as the manifest names it."""

    metric: str
    split: str
    value: float
    samples: int


def classifier_predictions(session: ort.InferenceSession, images: NDArray[np.uint8]) -> NDArray[np.int64]:
    predictions = []
    for start in range(0, len(images), _CHUNK):
        (logits,) = session.run(["logits"], {"images": normalized_digits(images[start : start + _CHUNK])})
        predictions.append(logits.argmax(1))
    return np.concatenate(predictions).astype(np.int64) if predictions else np.zeros(0, np.int64)


def classifier_accuracy(session: ort.InferenceSession, test: DigitSplit) -> Accuracy:
    correct = classifier_predictions(session, test.images) == test.labels
    return Accuracy(float(correct.mean()), int(correct.size))


def region_predictions(
    session: ort.InferenceSession, regions: RegionSet, empty: bool = False
) -> NDArray[np.int64]:
    """Arg-max class (digits and background) of every box sent, or of every empty box, in order."""
    per_canvas = regions.empty if empty else regions.boxes
    predictions = []
    for start in range(0, len(regions.canvases), _CANVAS_CHUNK):
        chunk = slice(start, start + _CANVAS_CHUNK)
        boxes = per_canvas[chunk]
        feeds = {
            "images": normalized_digits(np.stack([c.image for c in regions.canvases[chunk]])),
            "boxes": np.concatenate(boxes).astype(np.float32).reshape(-1, 4),
            "box_batch_indices": np.concatenate(
                [np.full(len(b), i, dtype=np.int64) for i, b in enumerate(boxes)]
            ),
        }
        (logits,) = session.run(["logits"], feeds)
        predictions.append(logits.argmax(1))
    return np.concatenate(predictions).astype(np.int64)


def region_accuracy(session: ort.InferenceSession, regions: RegionSet) -> Accuracy:
    """Fraction of digit boxes whose arg-max class (over the digits and background) is their digit."""
    correct = region_predictions(session, regions) == regions.labels
    return Accuracy(float(correct.mean()), int(correct.size))


def background_false_positives(session: ort.InferenceSession, regions: RegionSet) -> Accuracy:
    """Fraction of boxes on empty canvas areas whose arg-max class is a digit instead of background."""
    wrong = region_predictions(session, regions, empty=True) != BACKGROUND_CLASS
    return Accuracy(float(wrong.mean()), int(wrong.size))


def measure(session: ort.InferenceSession, classification: bool, test: DigitSplit) -> list[Figure]:
    """Every figure a manifest records: held-out and shifted held-out quality (and, for region models,
    the background false-positive rate on empty boxes of both canvas sets)."""
    if classification:
        held = classifier_accuracy(session, test)
        shifted = classifier_accuracy(session, shifted_digits(test))
        return [
            Figure("accuracy", HELD_OUT_SPLIT, held.value, held.samples),
            Figure("shifted_accuracy", SHIFTED_SPLIT, shifted.value, shifted.samples),
        ]
    held_set, shifted_set = held_out_regions(test), shifted_regions(test)
    figures = []
    for prefix, split, regions in (("", HELD_OUT_SPLIT, held_set), ("shifted_", SHIFTED_SPLIT, shifted_set)):
        accuracy = region_accuracy(session, regions)
        false_positives = background_false_positives(session, regions)
        figures += [
            Figure(f"{prefix}region_accuracy", split, accuracy.value, accuracy.samples),
            Figure(
                f"{prefix}background_false_positive_rate",
                split,
                false_positives.value,
                false_positives.samples,
            ),
        ]
    return figures
