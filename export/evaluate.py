"""Held-out accuracy of an exported model, measured with onnxruntime on the committed ONNX file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from export.cases import normalized_digits
from models.canvas import Canvas
from models.mnist import DigitSplit

_CHUNK = 250


@dataclass(frozen=True)
class Accuracy:
    value: float
    samples: int


def classifier_accuracy(session: ort.InferenceSession, test: DigitSplit) -> Accuracy:
    predictions = []
    for start in range(0, len(test), _CHUNK):
        (logits,) = session.run(
            ["logits"], {"images": normalized_digits(test.images[start : start + _CHUNK])}
        )
        predictions.append(logits.argmax(1))
    correct = np.concatenate(predictions) == test.labels
    return Accuracy(float(correct.mean()), int(correct.size))


def region_accuracy(session: ort.InferenceSession, canvases: list[Canvas]) -> Accuracy:
    """Fraction of true digit boxes whose arg-max class (over the digits and background) is their digit."""
    correct = []
    for start in range(0, len(canvases), 50):
        chunk = canvases[start : start + 50]
        boxes = np.concatenate([c.boxes for c in chunk]).astype(np.float32)
        indices = np.concatenate([np.full(len(c.boxes), i, dtype=np.int64) for i, c in enumerate(chunk)])
        feeds = {
            "images": normalized_digits(np.stack([c.image for c in chunk])),
            "boxes": boxes,
            "box_batch_indices": indices,
        }
        (logits,) = session.run(["logits"], feeds)
        correct.append(logits.argmax(1) == np.concatenate([c.labels for c in chunk]))
    flat = np.concatenate(correct)
    return Accuracy(float(flat.mean()), int(flat.size))
