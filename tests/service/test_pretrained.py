"""The shipped third-party entries over HTTP, on real photos: MTCNN's ONet finds the astronaut's face and
nothing in coffee() or rocket(); PaddleOCR's classifier tells upright text lines of page() from rotated ones.

The measurements are bench/pretrained_demo.py's, the script whose output docs/pretrained.md publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from bench.pretrained_demo import (
    ONET_REGIONS,
    PRETRAINED,
    measure_faces,
    measure_orientation,
    pretrained_repository,
    region_faces,
)
from poolserve.models.sample_photos import ASTRONAUT_FACE, FACE_PHOTO, FACELESS_PHOTOS, photo
from poolserve.service.settings import Settings
from tests.service.conftest import running_server

FACE = 0.99  # measured 0.99988 for the face box, both entries
NOT_FACE = 0.5  # measured at most 0.35 (a coffee() window); MTCNN's own ONet threshold is 0.7
MIN_ORIENTATION_ACCURACY = 0.9  # measured 34/36 = 0.944


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real uvicorn over a repository holding only the three shipped third-party entries."""
    repository = pretrained_repository(tmp_path_factory.mktemp("pretrained"))
    with (
        running_server(Settings(repository=repository)) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def faces(http: httpx.Client) -> dict[str, Any]:
    return measure_faces(http)


@pytest.mark.parametrize("entry", ["regions", "classifier"])
def test_the_astronauts_face_scores_high(faces: dict[str, Any], entry: str):
    astronaut = faces[FACE_PHOTO]
    assert astronaut["face_probability"][entry] > FACE
    assert max(astronaut["non_face_probabilities"][entry]) < NOT_FACE
    assert astronaut["grid"]["max_probability_on_face"] > FACE


@pytest.mark.parametrize("entry", ["regions", "classifier"])
@pytest.mark.parametrize("name", [FACE_PHOTO, *FACELESS_PHOTOS])
def test_windows_without_a_face_score_low(faces: dict[str, Any], name: str, entry: str):
    grid = faces[name]["grid"]
    assert grid["windows"] - grid["windows_overlapping_the_face"] >= 40
    assert grid["max_probability_off_face"][entry] < NOT_FACE


def test_region_features_are_onets_dense_layer(http: httpx.Client):
    scores, features = region_faces(http, photo(FACE_PHOTO), [ASTRONAUT_FACE, ASTRONAUT_FACE])
    assert features.shape == (2, 256)
    np.testing.assert_array_equal(features[0], features[1])  # the same box in one batch, the same row
    assert scores[0] == scores[1] > FACE


def test_text_line_orientation(http: httpx.Client):
    result = measure_orientation(http)
    assert result["samples"] == 36
    assert result["accuracy"] >= MIN_ORIENTATION_ACCURACY


@pytest.mark.parametrize("name", PRETRAINED)
def test_listed_ready_with_their_verification(http: httpx.Client, name: str):
    info = http.get(f"/v1/models/{name}").json()
    assert info["status"] == "ready"
    assert info["parity_max_abs_error"] <= info["parity_tolerance"] == 1e-5
    assert info["task"] == ("region-features" if name == ONET_REGIONS else "classification")
