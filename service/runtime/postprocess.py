"""Turning raw model scores into probabilities and ranked predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, in float64 for stability, returned as float32."""
    shifted = scores.astype(np.float64) - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    score: float


def top_k(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[Prediction]]:
    """The ``k`` best classes per row, best first; ties keep the lower class index first."""
    k = min(k, probabilities.shape[-1])
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [
        [Prediction(labels[int(i)], int(i), float(row[i])) for i in idx]
        for row, idx in zip(probabilities, order, strict=True)
    ]
