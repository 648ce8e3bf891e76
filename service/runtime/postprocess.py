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


# Up to this many classes a row is ranked by Python's sort on its list: for a handful of classes it is
# cheaper than numpy's argsort and fancy indexing, whose fixed costs dominate (bench.hotpath).
PYTHON_RANKING_MAX_CLASSES = 128


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """The ``k`` best classes of every row of (rows, classes), best first, as the API writes them:
    ``{"label", "index", "score"}``. Ties keep the lower class index first (a stable sort). NaN ranks
    last, as in numpy's sort.

    Rows of few classes are ranked in Python, the rest column-wise in numpy; both give the same answer.
    """
    k = min(k, probabilities.shape[-1])
    if probabilities.shape[-1] <= PYTHON_RANKING_MAX_CLASSES:
        rows: list[list[float]] = probabilities.tolist()
        total = sum(map(sum, rows))
        if total == total:  # no NaN, which Python's sort cannot order
            return [_ranked(row, labels, k) for row in rows]
    return _top_k_numpy(probabilities, labels, k)


def _ranked(row: list[float], labels: Sequence[str], k: int) -> list[dict[str, Any]]:
    # reverse=True keeps a stable sort stable: equal scores stay in class order.
    best = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]
    return [{"label": labels[j], "index": j, "score": row[j]} for j in best]


def _top_k_numpy(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    # Column-wise: labels, indices and scores become Python lists once for all rows, not per prediction.
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
