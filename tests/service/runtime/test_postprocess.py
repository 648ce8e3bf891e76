"""``top_k``: Python's ranking of short rows gives exactly numpy's, ties, zeros and NaN included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from poolserve.service.runtime.postprocess import PYTHON_RANKING_MAX_CLASSES, _top_k_numpy, top_k


def labels(n: int) -> list[str]:
    return [f"class-{i}" for i in range(n)]


def rows(seed: int, n_rows: int, n_classes: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Few distinct values, so ties are common; -0.0 beside 0.0 as well.
    values = np.array([0.0, -0.0, 0.125, 0.25, 0.5, 1.0, 1e-30, np.inf, -np.inf], np.float32)
    return rng.choice(values, (n_rows, n_classes)).astype(np.float32)


@pytest.mark.parametrize("n_classes", [1, 2, 10, PYTHON_RANKING_MAX_CLASSES, PYTHON_RANKING_MAX_CLASSES + 1])
@pytest.mark.parametrize("seed", range(20))
def test_ranking_matches_numpys_stable_argsort(n_classes: int, seed: int) -> None:
    probabilities = rows(seed, 1 + seed % 4, n_classes)
    for k in (1, 3, n_classes, n_classes + 5):
        assert top_k(probabilities, labels(n_classes), k) == _top_k_numpy(
            probabilities, labels(n_classes), min(k, n_classes)
        )


def test_ties_keep_the_lower_index_first() -> None:
    ranked = top_k(np.array([[0.25, 0.5, 0.25, 0.5]], np.float32), labels(4), 4)
    assert [p["index"] for p in ranked[0]] == [1, 3, 0, 2]


def test_nan_ranks_last_as_in_numpy() -> None:
    probabilities = np.array([[0.5, np.nan, 0.25], [0.1, 0.2, 0.3]], np.float32)
    ranked: list[list[dict[str, Any]]] = top_k(probabilities, labels(3), 3)
    assert [p["index"] for p in ranked[0]] == [0, 2, 1]
    assert [p["index"] for p in ranked[1]] == [2, 1, 0]
    reference = _top_k_numpy(probabilities, labels(3), 3)
    assert [[p["index"] for p in r] for r in ranked] == [[p["index"] for p in r] for r in reference]
    assert np.isnan(ranked[0][2]["score"])


def test_scores_are_the_float32_values_as_python_floats() -> None:
    probabilities = np.array([[0.1, 0.7, 0.2]], np.float32)
    best = top_k(probabilities, ["a", "b", "c"], 1)[0][0]
    assert best == {"label": "b", "index": 1, "score": float(np.float32(0.7))}
    assert type(best["score"]) is float and type(best["index"]) is int
