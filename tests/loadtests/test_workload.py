from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from poolserve.loadtests import regions, workload
from poolserve.loadtests.config import Scenario, TargetModels
from poolserve.loadtests.corpus import sklearn_digits
from poolserve.loadtests.workload import Corpus

MAX_BOXES_PER_REQUEST = 1024  # the service's default limit
MAX_IMAGES_PER_REQUEST = 64


def test_region_requests_spread_box_counts_over_every_bucket(corpus: Corpus) -> None:
    rng = random.Random(0)
    requests = [workload.region_request(rng, corpus) for _ in range(600)]
    per_image = [n for r in requests for n in r.box_counts]
    buckets = Counter(next(i for i, (lo, hi, _) in enumerate(regions.BOX_COUNT_BUCKETS) if lo <= n <= hi)
                      for n in per_image)  # fmt: skip
    assert set(buckets) == set(range(len(regions.BOX_COUNT_BUCKETS)))
    assert buckets[0] > buckets[3]  # few boxes is common, hundreds is rare
    assert {len(r.images) for r in requests} == {1, 2, 4}
    assert max(sum(r.box_counts) for r in requests) <= MAX_BOXES_PER_REQUEST


def test_boxes_are_valid_and_inside_their_image(corpus: Corpus) -> None:
    rng = random.Random(1)
    for _ in range(200):
        request = workload.region_request(rng, corpus)
        for image, boxes in zip(request.images, request.boxes, strict=True):
            for x1, y1, x2, y2 in boxes:
                assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height


def test_composed_canvases_box_each_digit() -> None:
    digits = [pixels for _, pixels, _ in sklearn_digits()[:100]]
    canvases = regions.composed_canvases(digits, np.random.default_rng(0))
    assert len(canvases) == regions.COMPOSED_CANVASES
    assert all(1 <= len(c.objects) <= 4 for c in canvases)
    assert Counter(c.image.width for c in canvases).most_common(1)[0][0] == 112


def test_classification_draws_digits_and_photos_and_never_one_image(corpus: Corpus) -> None:
    rng = random.Random(0)
    drawn = [workload.classify_image(rng, corpus) for _ in range(400)]
    assert len({d.data for d in drawn}) > 150
    photos = {p.source for p in corpus.photos}
    assert 0.35 < sum(d.source in photos for d in drawn) / len(drawn) < 0.65
    batches = [workload.classify_batch(rng, corpus) for _ in range(200)]
    assert {len(b) for b in batches} == {2, 4, 8, 16, 32}
    assert max(len(b) for b in batches) <= MAX_IMAGES_PER_REQUEST


def test_the_mixed_scenario_drops_kinds_the_target_cannot_serve() -> None:
    only_classifiers = TargetModels(classification=["lenet5-mnist"], region_features=[])
    assert "features" not in workload.scenario_weights(Scenario.MIXED, only_classifiers)
    assert set(workload.scenario_weights(Scenario.MIXED, only_classifiers)) == {
        "classify-multipart", "classify-json", "classify-raw", "classify-batch",
    }  # fmt: skip
    with pytest.raises(ValueError, match="features"):
        workload.scenario_weights(Scenario.FEATURES, only_classifiers)
