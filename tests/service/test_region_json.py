"""``region_results_json`` against a slow, obvious per-box reference: equal orjson bytes, every case."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from poolserve.repository.manifest import Manifest
from poolserve.service.api.region_json import Encoding, float16_base64_rows, region_results_json
from poolserve.service.runtime.postprocess import softmax
from poolserve.service.runtime.runtime import RegionOutput

MANIFEST = Manifest.model_validate_json(
    (Path(__file__).parents[2] / "model_repository" / "digits-roialign" / "1" / "manifest.json").read_bytes()
)
ENCODINGS: tuple[Encoding, ...] = ("float32", "float16-base64")


def reference_json(
    manifest: Manifest, boxes: list[np.ndarray], output: RegionOutput, encoding: Encoding, k: int
) -> dict[str, Any]:
    """One box at a time: sort classes by score descending, lower index first on ties; encode each vector."""
    results = []
    for i, (image_boxes, features) in enumerate(zip(boxes, output.features, strict=True)):
        rows = []
        for j, (box, vector) in enumerate(zip(image_boxes, features, strict=True)):
            encoded: Any = vector
            if encoding == "float16-base64":
                encoded = base64.b64encode(halves(vector).tobytes()).decode("ascii")
            row: dict[str, Any] = {"box": box, "features": encoded}
            if output.probabilities:
                scores = output.probabilities[i][j]
                order = sorted(range(len(scores)), key=lambda c: (-float(scores[c]), c))[:k]
                row["predictions"] = [
                    {"label": manifest.labels[c], "index": c, "score": float(scores[c])} for c in order
                ]
            rows.append(row)
        results.append({"boxes": rows})
    envelope = {"model": manifest.name, "version": manifest.version, "feature_dim": manifest.feature_dim}
    return {**envelope, "encoding": encoding, "results": results}


def halves(vector: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return vector.astype("<f2")


def dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def random_case(
    rng: np.random.Generator, counts: list[int], dim: int, classes: int, with_scores: bool, ties: bool
) -> tuple[Manifest, list[np.ndarray], RegionOutput]:
    manifest = MANIFEST.model_copy(
        update={"labels": [f"class-{c}" for c in range(classes)], "feature_dim": dim}
    )
    boxes = [(rng.random((n, 4)) * 500).astype(np.float32) for n in counts]
    scale = rng.choice([1e-6, 1.0, 1e5])  # 1e5 overflows float16: inf in the base64
    features = [(rng.standard_normal((n, dim)) * scale).astype(np.float32) for n in counts]
    probabilities = None
    if with_scores:
        if ties:  # few distinct values, so most rows hold equal scores in several places
            probabilities = [(rng.integers(0, 3, (n, classes)) / 4).astype(np.float32) for n in counts]
        else:
            probabilities = [softmax(rng.standard_normal((n, classes)).astype(np.float32)) for n in counts]
    # Scores that are probabilities already: the output hands them over unchanged.
    return manifest, boxes, RegionOutput(features, probabilities, scores_are_probabilities=True)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("with_scores", [True, False], ids=["scores", "no-scores"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("dim", [1, 2, 3, 128, 129, 256])
def test_equals_reference_bytes(encoding: Encoding, with_scores: bool, ties: bool, dim: int) -> None:
    rng = np.random.default_rng([dim, with_scores, ties, len(encoding)])
    for _ in range(6):
        counts = [int(n) for n in rng.choice([0, 1, 2, 7, 33], size=int(rng.integers(1, 5)))]
        classes = int(rng.choice([1, 2, 3, 10, 40]))
        k = int(rng.choice([1, 3, 5, 10, 50]))  # often more than the classes
        manifest, boxes, output = random_case(rng, counts, dim, classes, with_scores, ties)
        expected = dumps(reference_json(manifest, boxes, output, encoding, k))
        assert dumps(region_results_json(manifest, boxes, output, encoding, k)) == expected


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_no_images_and_no_boxes(encoding: Encoding) -> None:
    rng = np.random.default_rng(7)
    for counts in ([], [0], [0, 0, 3, 0]):
        manifest, boxes, output = random_case(rng, counts, 128, 10, True, False)
        expected = dumps(reference_json(manifest, boxes, output, encoding, 5))
        assert dumps(region_results_json(manifest, boxes, output, encoding, 5)) == expected


def test_float16_base64_special_values_and_layouts() -> None:
    specials = np.array([0.0, -0.0, 1e-8, -6e-8, 1e-5, 65504, 7e4, -1e9, np.inf, -np.inf, np.nan], np.float32)
    rng = np.random.default_rng(3)
    for dim in range(1, 12):
        rows = rng.choice(specials, size=(9, dim)).astype(np.float32)
        fortran = np.asfortranarray(rows)
        expected = [base64.b64encode(halves(r).tobytes()).decode("ascii") for r in rows]
        assert float16_base64_rows(rows) == expected
        assert float16_base64_rows(fortran) == expected
        assert float16_base64_rows(rows[::2]) == expected[::2]
    assert float16_base64_rows(np.zeros((0, 5), np.float32)) == []


def test_features_without_scores_have_no_predictions_key() -> None:
    manifest, boxes, output = random_case(np.random.default_rng(5), [2], 4, 3, False, False)
    body = orjson.loads(dumps(region_results_json(manifest, boxes, output, "float32", 5)))
    assert [list(row) for row in body["results"][0]["boxes"]] == [["box", "features"]] * 2


def test_length_mismatch_is_an_error() -> None:
    manifest, boxes, output = random_case(np.random.default_rng(6), [3], 4, 3, True, False)
    with pytest.raises(ValueError):
        region_results_json(manifest, [boxes[0][:2]], output, "float32", 5)
