"""Batch handlers (``batcher.BatchHandler``) running one model's onnxruntime session over a batch.

Region batches concatenate every request's images and offset each box's batch index, so a whole batch
is one backbone pass per image and one RoI call for all boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from poolserve.service.runtime.model_io import ClassifierIO, RegionIO, TaskIO
from poolserve.service.runtime.postprocess import probabilities


@dataclass(frozen=True)
class ClassificationResult:
    scores: np.ndarray  # (n, classes), the model's own output, for protocols that return raw tensors
    probabilities: np.ndarray  # (n, classes) float32


@dataclass(frozen=True)
class RegionItem:
    images: np.ndarray  # (n, C, H, W) float32, preprocessed
    boxes: list[np.ndarray]  # per image, (k_i, 4) float32, x1 y1 x2 y2 in the model input frame


@dataclass(frozen=True)
class RegionResult:
    features: list[np.ndarray]  # per image, (k_i, D) float32
    scores: (
        list[np.ndarray] | None
    )  # per image, (k_i, classes) raw model scores; None without a scores output


def _split(array: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """``array``'s rows in consecutive runs of ``counts``, as views; slicing in a loop skips
    ``np.split``'s per-piece machinery (bench.hotpath's "batch handler" stage)."""
    pieces, start = [], 0
    for count in counts:
        pieces.append(array[start : start + count])
        start += count
    return pieces


class ClassificationHandler:
    """Items are (n, C, H, W) tensors; results are the matching (n, classes) raw scores and probabilities.

    Probabilities are computed here, once for the whole batch: row by row the same values as per request,
    for one call's overhead instead of one per request."""

    def __init__(self, session: ort.InferenceSession, io: ClassifierIO) -> None:
        self._session = session
        self._input = io.image.name
        self._dtype = np.dtype(io.image.dtype)
        self._output = io.scores.name
        self._fixed_batch = io.fixed_batch  # such graphs run the batch in slices of that size
        self._scores_are_probabilities = io.scores_are_probabilities

    def size(self, item: np.ndarray) -> int:
        return int(item.shape[0])

    def run(self, items: Sequence[np.ndarray]) -> list[ClassificationResult]:
        batch = (np.concatenate(items) if len(items) > 1 else items[0]).astype(self._dtype, copy=False)
        step = self._fixed_batch or len(batch)
        scores = np.concatenate(
            [
                self._session.run([self._output], {self._input: batch[i : i + step]})[0]
                for i in range(0, len(batch), step)
            ]
        )
        counts = [self.size(i) for i in items]
        probs = probabilities(scores, self._scores_are_probabilities)
        return [
            ClassificationResult(s, p)
            for s, p in zip(_split(scores, counts), _split(probs, counts), strict=True)
        ]


class RegionHandler:
    def __init__(self, session: ort.InferenceSession, io: RegionIO) -> None:
        self._session = session
        self._names = (io.image.name, io.boxes.name, io.box_batch_indices.name)
        self._outputs = [spec.name for spec in io.outputs]
        self._feature_dim = io.feature_dim
        self._classes = len(io.labels)

    def size(self, item: RegionItem) -> int:
        return int(item.images.shape[0])

    def run(self, items: Sequence[RegionItem]) -> list[RegionResult]:
        images = np.concatenate([i.images for i in items])
        per_image = [b for i in items for b in i.boxes]
        counts = [len(b) for b in per_image]
        features, scores = self._infer(images, per_image, counts)
        feature_rows, score_rows = (
            _split(features, counts),
            _split(scores, counts) if scores is not None else None,
        )
        results, start = [], 0
        for item in items:
            n = len(item.boxes)
            results.append(
                RegionResult(
                    features=feature_rows[start : start + n],
                    scores=score_rows[start : start + n] if score_rows is not None else None,
                )
            )
            start += n
        return results

    def _infer(
        self, images: np.ndarray, per_image: list[np.ndarray], counts: list[int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        has_scores = len(self._outputs) > 1
        if sum(counts) == 0:  # nothing to pool; RoI ops disagree on empty inputs, so do not ask them
            empty_scores = np.zeros((0, self._classes), np.float32) if has_scores else None
            return np.zeros((0, self._feature_dim), np.float32), empty_scores
        boxes = np.concatenate(per_image).astype(np.float32, copy=False)
        indices = np.repeat(np.arange(len(per_image), dtype=np.int64), counts)
        image_name, boxes_name, indices_name = self._names
        outputs = self._session.run(
            self._outputs, {image_name: images, boxes_name: boxes, indices_name: indices}
        )
        return np.asarray(outputs[0]), (np.asarray(outputs[1]) if has_scores else None)


def batch_handler(session: ort.InferenceSession, io: TaskIO) -> ClassificationHandler | RegionHandler:
    """The handler for the model's task."""
    return ClassificationHandler(session, io) if isinstance(io, ClassifierIO) else RegionHandler(session, io)
