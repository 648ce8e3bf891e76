"""Errors as application/problem+json: domain errors mapped in one place, unexpected ones never leaked."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from poolserve.service.api.error_table import STATUS
from poolserve.service.errors import ServiceError
from poolserve.service.runtime.runtime import Runtime
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, running_server


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_domain_error_has_a_status() -> None:
    def leaves(cls: type) -> set[type]:
        subs: set[type] = set(cls.__subclasses__())
        return subs.union(*(leaves(s) for s in subs))

    assert leaves(ServiceError) <= set(STATUS)


def test_unexpected_errors_are_logged_not_leaked(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Runtime, model: object, images: np.ndarray) -> None:
        raise RuntimeError("secret internal detail /srv/model.onnx")

    monkeypatch.setattr(Runtime, "classify", broken)
    response = client.post(
        "/v1/models/lenet5-mnist/classify", content=png(), headers={"content-type": "image/png"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text and "onnx" not in response.text
    assert response.json()["title"] == "Internal Server Error"


def test_a_request_past_its_time_limit_gets_504() -> None:
    # The request waits for its batch, so it always yields to the loop past a 1 µs deadline.
    settings = Settings(repository=REPOSITORY, request_timeout_s=1e-6)
    with running_server(settings) as url:
        response = httpx.post(
            f"{url}/v1/models/lenet5-mnist/classify", content=png(), headers={"content-type": "image/png"}
        )
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_model_names_never_become_metric_labels(client: httpx.Client) -> None:
    client.post("/v1/models/made-up-name-123/classify", params={"top_k": 0})
    client.get("/v1/models/made-up-name-456")
    assert "made-up-name" not in client.get("/metrics").text
