"""The held-out and shifted evaluation sets: fixed, built from the test split only, boxes as documented."""

from __future__ import annotations

import numpy as np
import pytest

from poolserve.models.canvas import box_iou
from poolserve.models.evaluation_sets import (
    SHIFTED_LOOSENESS,
    held_out_canvases,
    held_out_regions,
    shifted_digits,
    shifted_regions,
)
from poolserve.models.mnist import held_out_split
from poolserve.models.region_boxes import BACKGROUND_CLASS, POSITIVE_COVERAGE, coverage, training_boxes


@pytest.fixture(scope="module")
def test_split():
    return held_out_split().test


def test_shifted_digits_are_the_test_digits_distorted_the_same_way_every_time(test_split):
    first, again = shifted_digits(test_split), shifted_digits(test_split)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.labels, test_split.labels)
    changed = (first.images != test_split.images).reshape(len(test_split), -1).any(axis=1)
    assert changed.all()


def test_held_out_canvases_are_unchanged_by_the_shifted_set(test_split):
    """The held-out canvases (and their figure) are those every earlier manifest was measured on."""
    canvases = held_out_canvases(test_split)
    assert len(canvases) == 300 and sum(len(c.labels) for c in canvases) == 737
    regions = held_out_regions(test_split, 20)
    for canvas, boxes in zip(regions.canvases, regions.boxes, strict=True):
        np.testing.assert_array_equal(boxes, canvas.boxes)


def test_shifted_boxes_are_loose_and_hold_the_ink(test_split):
    regions = shifted_regions(test_split, 40)
    again = shifted_regions(test_split, 40)
    np.testing.assert_array_equal(np.concatenate(regions.boxes), np.concatenate(again.boxes))
    for canvas, boxes in zip(regions.canvases, regions.boxes, strict=True):
        assert boxes.shape == canvas.boxes.shape
        size = canvas.image.shape[0]
        for loose, ink in zip(boxes, canvas.boxes, strict=True):
            assert coverage(loose[None], ink[None])[0, 0] == pytest.approx(1.0, abs=1e-6)
            ratio = (loose[2:] - loose[:2]) / (ink[2:] - ink[:2])
            unclipped = (loose > 0).all() and (loose < size).all()
            if unclipped:
                assert (ratio >= SHIFTED_LOOSENESS[0] - 1e-4).all() and (
                    ratio <= SHIFTED_LOOSENESS[1] + 1e-4
                ).all()


def test_empty_boxes_overlap_no_digit(test_split):
    for regions in (held_out_regions(test_split, 40), shifted_regions(test_split, 40)):
        assert sum(len(e) for e in regions.empty) >= 120
        for canvas, empty in zip(regions.canvases, regions.empty, strict=True):
            if len(empty) and len(canvas.boxes):
                assert coverage(empty, canvas.boxes).max() == 0.0


def test_training_boxes_follow_the_labelling_rules():
    train = held_out_split().train
    from poolserve.models.canvas import distorted_canvas
    from poolserve.models.distortions import TRAINING

    rng = np.random.default_rng(0)
    kinds = {"digit": 0, "background": 0}
    for _ in range(30):
        canvas = distorted_canvas(train, rng, TRAINING)
        labelled = training_boxes(canvas, rng)
        for box, label in zip(labelled.boxes, labelled.labels, strict=True):
            covered = coverage(box[None], canvas.boxes)[0]
            if label == BACKGROUND_CLASS:
                kinds["background"] += 1
                assert covered.max(initial=0.0) <= 0.2
            else:
                kinds["digit"] += 1
                own = [
                    i for i, v in enumerate(canvas.labels) if v == label and covered[i] >= POSITIVE_COVERAGE
                ]
                assert own, (box, canvas.boxes)
                assert box_iou(box[None], canvas.boxes[own]).max() > 0.3
    assert kinds["digit"] >= 60 and kinds["background"] >= 60
