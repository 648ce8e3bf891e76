"""Batch handlers against the shipped models: a batch of requests equals each image run alone."""

from __future__ import annotations

import numpy as np
import pytest

from poolserve.service.runtime.batch_handlers import ClassificationHandler, RegionHandler, RegionItem
from poolserve.service.runtime.model_io import ClassifierIO, RegionIO
from poolserve.service.runtime.postprocess import probabilities
from tests.service.conftest import CLASSIFIERS, REGION_MODELS


def random_images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(size=(n, *shape)).astype(np.float32)


def random_boxes(rng: np.random.Generator, k: int, size: int) -> np.ndarray:
    corners = rng.uniform(0, size, size=(k, 2, 2))
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)


@pytest.mark.parametrize("model", CLASSIFIERS)
def test_classification_batch_equals_single_runs(manifests, reference_sessions, model: str) -> None:
    manifest = manifests[model]
    spec = manifest.preprocessing
    handler = ClassificationHandler(reference_sessions[model], ClassifierIO.of(manifest))
    rng = np.random.default_rng(0)
    items = [random_images(rng, n, (spec.channels, spec.height, spec.width)) for n in (2, 1, 3)]
    batched = handler.run(items)
    for item, result in zip(items, batched, strict=True):
        singles = [handler.run([image[None]])[0] for image in item]
        # One session, other batch sizes: onnxruntime may block the GEMMs differently (last-bit rounding);
        # a mixed-up item would differ by whole logits.
        for batched_values, single_values in (
            (result.scores, np.concatenate([s.scores for s in singles])),
            (result.probabilities, np.concatenate([s.probabilities for s in singles])),
        ):
            np.testing.assert_allclose(batched_values, single_values, rtol=1e-5, atol=1e-5)
        # Per batch, as the handler computes them, the same values as per request
        expected = probabilities(result.scores, manifest.io.scores_are_probabilities)
        np.testing.assert_array_equal(result.probabilities, expected)


@pytest.mark.parametrize("model", REGION_MODELS)
def test_region_batch_offsets_box_indices_across_requests(manifests, reference_sessions, model: str) -> None:
    manifest = manifests[model]
    spec = manifest.preprocessing
    handler = RegionHandler(reference_sessions[model], RegionIO.of(manifest))
    rng = np.random.default_rng(1)
    shape = (spec.channels, spec.height, spec.width)
    items = [
        RegionItem(
            random_images(rng, 2, shape), [random_boxes(rng, 3, spec.width), random_boxes(rng, 0, spec.width)]
        ),
        RegionItem(random_images(rng, 1, shape), [random_boxes(rng, 4, spec.width)]),
        RegionItem(random_images(rng, 1, shape), [random_boxes(rng, 0, spec.width)]),
    ]
    batched = handler.run(items)
    for item, result in zip(items, batched, strict=True):
        assert [len(f) for f in result.features] == [len(b) for b in item.boxes]
        for image, boxes, features in zip(item.images, item.boxes, result.features, strict=True):
            (alone,) = handler.run([RegionItem(image[None], [boxes])])
            np.testing.assert_allclose(features, alone.features[0], rtol=1e-5, atol=1e-5)
            assert features.shape == (len(boxes), manifest.feature_dim)
