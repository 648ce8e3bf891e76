from __future__ import annotations

import numpy as np
import pytest

from poolserve.loadtests.windows import Snapshot, histogram_delta, percentile, window


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_percentile_matches_nearest_rank_on_the_raw_samples(fraction: float) -> None:
    samples = np.random.default_rng(3).integers(1, 500, size=997)
    histogram: dict[int, int] = {}
    for s in samples.tolist():
        histogram[s] = histogram.get(s, 0) + 1
    rank = int(np.ceil(fraction * len(samples)))  # nearest-rank definition, 1-based
    assert percentile(histogram, fraction) == np.sort(samples)[rank - 1]


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile({}, 0.95) == 0


def test_window_is_the_difference_of_two_snapshots() -> None:
    earlier = Snapshot(at_s=2, users=4, requests=10, failures=1, response_times={10: 9, 500: 1})
    later = Snapshot(at_s=4, users=8, requests=30, failures=2, response_times={10: 9, 20: 19, 500: 2})
    w = window(earlier, later)
    assert histogram_delta(later.response_times, earlier.response_times) == {20: 19, 500: 1}
    assert (w.requests, w.failures, w.users, w.seconds) == (20, 1, 8, 2)
    assert (w.rps, w.ok_rps, w.error_rate) == (10, 9.5, 0.05)
    assert (w.p50_ms, w.p95_ms, w.p99_ms) == (20, 20, 500)
