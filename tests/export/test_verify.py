"""``poolserve verify``'s verdict on a re-measured accuracy: one flipped sample is a CPU, two are a change."""

from __future__ import annotations

import pytest

from poolserve.export.verify import FigureCheck
from poolserve.repository.manifest import Evaluation

RECORDED = Evaluation(
    metric="accuracy",
    value=980 / 1000,
    dataset="MNIST",
    split="held-out",
    samples=1000,
    command="poolserve export",
)


@pytest.mark.parametrize(
    ("correct", "samples", "ok", "verdict"),
    [
        (980, 1000, True, "ok"),
        (981, 1000, True, "1 of 1000 differs"),
        (979, 1000, True, "1 of 1000 differs"),
        (982, 1000, False, "MISMATCH"),
        (978, 1000, False, "MISMATCH"),
        (980, 999, False, "MISMATCH"),  # another evaluation set, whatever the fraction
    ],
)
def test_at_most_one_sample_may_differ(correct: int, samples: int, ok: bool, verdict: str):
    result = FigureCheck("accuracy", RECORDED, correct / samples, samples)
    assert result.ok is ok
    assert verdict in result.summary()
