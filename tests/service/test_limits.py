from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, running_server

LIMITS = Settings(
    repository=REPOSITORY,
    max_body_bytes=200_000,
    max_image_pixels=100 * 100,
    max_images_per_request=3,
    api_key="s3cret",
    cors_origins=["https://app.example"],
)


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def limited() -> Iterator[httpx.Client]:
    with running_server(LIMITS) as url, httpx.Client(base_url=url, headers={"X-API-Key": "s3cret"}) as http:
        yield http


def test_api_key_is_required_when_configured(limited: httpx.Client) -> None:
    base = str(limited.base_url).rstrip("/")
    url = f"{base}/v1/models"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-API-Key": "wrong"}).status_code == 401
    assert limited.get("/v1/models").status_code == 200
    assert httpx.get(f"{base}/health/ready").status_code == 200  # probes need no key


def test_declared_oversize_body_is_refused_before_reading(limited: httpx.Client) -> None:
    response = limited.post(
        "/v1/models/lenet5-mnist/classify", content=b"\0" * 300_000, headers={"content-type": "image/png"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_streamed_oversize_body_is_refused(limited: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(30):
            yield b"\0" * 10_000

    response = limited.post(
        "/v1/models/lenet5-mnist/classify", content=chunks(), headers={"content-type": "image/png"}
    )
    assert response.status_code == 413


def test_too_many_images(limited: httpx.Client) -> None:
    files = [("images", (f"{i}.png", png((28, 28)), "image/png")) for i in range(4)]
    response = limited.post("/v1/models/lenet5-mnist/classify", files=files)
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/limit-exceeded"


def test_too_many_pixels(limited: httpx.Client) -> None:
    response = limited.post(
        "/v1/models/lenet5-mnist/classify", content=png((101, 100)), headers={"content-type": "image/png"}
    )
    assert response.status_code == 413
    assert response.json()["type"] == "/problems/image-too-large"


def test_cors_allows_only_configured_origins(limited: httpx.Client) -> None:
    def preflight(origin: str) -> httpx.Response:
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        return limited.options("/v1/models/lenet5-mnist/classify", headers=headers)

    assert preflight("https://app.example").headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in preflight("https://evil.example").headers
