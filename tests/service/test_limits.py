from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, running_server

DATA = Path(__file__).parents[1] / "data"
CLASSIFY = "/v1/models/lenet5-mnist/classify"
FEATURES = "/v1/models/digits-roialign/features"

LIMITS = Settings(
    repository=REPOSITORY,
    max_body_bytes=200_000,
    max_image_pixels=100 * 100,
    max_images_per_request=3,
    api_key="s3cret",
    cors_origins=["https://app.example"],
    max_top_k=3,  # below the default top_k of 5
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
    refused = preflight("https://evil.example")
    assert "access-control-allow-origin" not in refused.headers
    assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/cors-refused" and "origin" in refused.json()["detail"]


def test_a_max_top_k_below_the_default_lowers_the_default_and_refuses_only_asking_for_more(
    limited: httpx.Client,
) -> None:
    digit = (DATA / "digits" / "7_700.png").read_bytes()
    buffer = io.BytesIO()  # a canvas within this server's max_image_pixels
    Image.open(DATA / "canvases" / "canvas_1.png").crop((0, 0, 100, 100)).save(buffer, format="PNG")
    canvas = buffer.getvalue()
    unasked = limited.post(CLASSIFY, content=digit, headers={"content-type": "image/png"})
    assert unasked.status_code == 200, unasked.text
    assert len(unasked.json()["results"][0]["predictions"]) == 3
    boxes = {"boxes": "[[[18, 49, 28, 64]]]"}
    regions = limited.post(FEATURES, files={"images": ("c.png", canvas, "image/png")}, data=boxes)
    assert regions.status_code == 200, regions.text
    assert len(regions.json()["results"][0]["boxes"][0]["predictions"]) == 3
    asked = limited.post(CLASSIFY, params={"top_k": 4}, content=digit, headers={"content-type": "image/png"})
    assert asked.status_code == 422 and asked.json()["detail"] == "top_k is 4; at most 3"
    fewer = limited.post(CLASSIFY, params={"top_k": 2}, content=digit, headers={"content-type": "image/png"})
    assert len(fewer.json()["results"][0]["predictions"]) == 2
