from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import onnxruntime as ort

from poolserve.service.runtime.providers import select_providers
from poolserve.service.settings import Settings
from tests.service.conftest import (
    CLASSIFIERS,
    REGION_MODELS,
    REPOSITORY,
    SHIPPED_CLASSIFIERS,
    SHIPPED_REGION_MODELS,
    running_server,
)


def test_every_shipped_model_is_in_the_repository() -> None:
    missing = sorted(set(SHIPPED_CLASSIFIERS + SHIPPED_REGION_MODELS) - set(CLASSIFIERS + REGION_MODELS))
    assert not missing, f"not exported into {REPOSITORY.name}/ yet: {missing}"


def test_listing_shows_every_shipped_model_ready(client: httpx.Client, manifests) -> None:
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    provider = select_providers("auto", ort.get_available_providers(), strict=False).providers[0]
    assert set(listed) >= set(CLASSIFIERS + REGION_MODELS)
    for name, info in listed.items():
        manifest = manifests[name]
        assert info["status"] == "ready"
        assert info["version"] == manifest.version and info["sha256"] == manifest.sha256
        assert info["execution_provider"] == provider
        assert info["labels"] == manifest.labels
        assert info["parity_max_abs_error"] == manifest.verification.max_abs_error


def test_model_metadata(client: httpx.Client, manifests) -> None:
    region = client.get("/v1/models/digits-roialign").json()
    assert region["task"] == "region-features"
    assert region["feature_dim"] == manifests["digits-roialign"].feature_dim
    assert region["roi"]["op"] == "RoiAlign"
    assert [s["name"] for s in region["inputs"]] == ["images", "boxes", "box_batch_indices"]
    classifier = client.get("/v1/models/lenet5-mnist").json()
    assert classifier["task"] == "classification"
    assert classifier["preprocessing"]["height"] == 28
    assert any(e["metric"] == "accuracy" for e in classifier["evaluations"])
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_a_broken_model_fails_alone(tmp_path: Path) -> None:
    shutil.copytree(REPOSITORY / "lenet5-mnist", tmp_path / "lenet5-mnist")
    shutil.copytree(REPOSITORY / "digits-roialign", tmp_path / "digits-roialign")
    (broken,) = (tmp_path / "digits-roialign").glob("*/model.onnx")
    broken.write_bytes(broken.read_bytes()[:-1] + b"\0")  # sha256 no longer matches the manifest

    with running_server(Settings(repository=tmp_path)) as url:
        assert httpx.get(f"{url}/health/ready").json()["models"] == {
            "digits-roialign": "failed",
            "lenet5-mnist": "ready",
        }
        info = httpx.get(f"{url}/v1/models/digits-roialign").json()
        assert info["status"] == "failed" and "sha256" in info["reason"]
        assert str(tmp_path) not in info["reason"]
        refused = httpx.post(f"{url}/v1/models/digits-roialign/features", json={"items": []})
        assert refused.status_code == 503
        assert "retry-after" not in refused.headers  # failed for good, unlike a model still loading


def test_an_empty_repository_is_never_ready(tmp_path: Path) -> None:
    with running_server(Settings(repository=tmp_path), wait_ready=False) as url:
        ready = httpx.get(f"{url}/health/ready")
        live = httpx.get(f"{url}/health/live")
    assert live.status_code == 200
    assert ready.status_code == 503


def test_openapi_documents_the_api(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in (
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/classify",
        "/v1/models/{name}/features",
    ):
        assert path in schema["paths"]
    classify_body = schema["paths"]["/v1/models/{name}/classify"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/png"} <= set(classify_body)
    assert client.get("/docs").status_code == 200
