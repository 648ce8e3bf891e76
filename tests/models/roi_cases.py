"""Hand-made RoI cases shared by the eager and the ONNX tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_SHAPE = (3, 2, 9, 11)  # three images in one batch, odd sizes


@dataclass(frozen=True)
class RoICase:
    name: str
    boxes: np.ndarray  # (K, 4), image pixels
    batch_indices: np.ndarray  # (K,)


def _case(name: str, rows: list[list[float]], batch: list[int]) -> RoICase:
    return RoICase(name, np.array(rows, dtype=np.float32).reshape(-1, 4), np.array(batch, dtype=np.int64))


HAND_MADE = [
    _case("inside", [[2.0, 3.0, 12.0, 14.0]], [0]),
    _case("fractional", [[1.3, 2.7, 9.1, 15.9], [0.25, 0.75, 20.5, 17.5]], [1, 2]),
    _case("half-rounding", [[1.0, 3.0, 5.0, 7.0], [-1.0, -3.0, 2.9, 5.0]], [0, 1]),
    _case(
        "at-borders", [[0.0, 0.0, 22.0, 18.0], [18.0, 14.0, 22.0, 18.0], [0.0, 16.0, 6.0, 18.0]], [0, 1, 2]
    ),
    _case("smaller-than-a-bin", [[4.0, 4.0, 4.6, 5.1], [10.0, 2.0, 10.5, 2.5]], [2, 0]),
    _case("degenerate", [[5.0, 5.0, 5.0, 5.0], [8.0, 3.0, 2.0, 1.0]], [1, 1]),
    _case(
        "outside-image",
        [[-30.0, -30.0, -10.0, -12.0], [40.0, 40.0, 60.0, 50.0], [-5.0, 4.0, 30.0, 9.0]],
        [0, 2, 1],
    ),
    _case("several-images", [[2.0, 2.0, 10.0, 10.0]] * 3 + [[6.0, 1.0, 21.0, 17.0]] * 3, [0, 1, 2, 2, 1, 0]),
    _case("none", [], []),
]


def features(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(FEATURE_SHAPE).astype(np.float32)


def random_case(seed: int, count: int) -> RoICase:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(-6, 24, size=(count, 2))
    extent = rng.uniform(0, 16, size=(count, 2))
    boxes = np.concatenate([corner, corner + extent], axis=1).astype(np.float32)
    return RoICase(f"random-{count}", boxes, rng.integers(0, FEATURE_SHAPE[0], size=count).astype(np.int64))
