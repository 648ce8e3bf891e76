"""Turning raw model scores into probabilities and ranked predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, in float64 for stability, returned as float32."""
    shifted = scores.astype(np.float64) - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def probabilities(scores: np.ndarray, are_probabilities: bool) -> np.ndarray:
    """A model's (rows, classes) scores as probabilities: softmax unless the model already outputs them."""
    if are_probabilities or not len(scores):
        return scores.astype(np.float32, copy=False)
    return softmax(scores)


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """The ``k`` best classes of every row of (rows, classes), best first, as the API writes them:
    ``{"label", "index", "score"}``. Ties keep the lower class index first (a stable argsort).

    Column-wise: labels, indices and scores become Python lists once for all rows, not per prediction.
    """
    k = min(k, probabilities.shape[-1])
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    names = np.asarray(labels, dtype=object)[order].tolist()
    scores = probabilities[np.arange(len(order))[:, None], order].tolist()
    return [
        [
            {"label": n, "index": j, "score": s}
            for n, j, s in zip(row_names, row_order, row_scores, strict=False)
        ]
        for row_names, row_order, row_scores in zip(names, order.tolist(), scores, strict=False)
    ]
