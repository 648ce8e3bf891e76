"""API-key auth (off by default; bearer or X-API-Key; probe exemptions), CORS (off by default), uploads
kept in memory, and response headers that say nothing about the server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message

from poolserve.service.api.limits import RequestLimits
from poolserve.service.api.payloads import _multipart_images
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, running_server

KEY = "correct horse battery staple"
ORIGIN = "https://app.example"
LOCKED = Settings(repository=REPOSITORY, api_key=KEY, auth_exempt_metrics=False, cors_origins=[ORIGIN])


@pytest.fixture(scope="module")
def locked() -> Iterator[str]:
    with running_server(LOCKED) as url:
        yield url


def test_auth_and_cors_are_off_by_default(client: httpx.Client) -> None:
    assert client.get("/v1/models").status_code == 200
    assert client.get("/metrics").status_code == 200
    preflight = client.options(
        "/v1/models", headers={"origin": ORIGIN, "access-control-request-method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in client.get("/v1/models", headers={"origin": ORIGIN}).headers


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": f"Bearer {KEY[:-1]}"}, 401),
        ({"authorization": f"Basic {KEY}"}, 401),
        ({"x-api-key": "wrong"}, 401),
        ({"authorization": f"Bearer {KEY}"}, 200),
        ({"x-api-key": KEY}, 200),
    ],
)
def test_inference_and_model_routes_need_the_key(locked: str, headers: dict[str, str], status: int) -> None:
    for response in (
        httpx.get(f"{locked}/v1/models", headers=headers),
        httpx.post(f"{locked}/v1/models/lenet5-mnist/classify", headers=headers, json={"images": []}),
        httpx.post(f"{locked}/v1/models/digits-roialign/features", headers=headers, json={"items": []}),
        # The key is checked before the model is looked up: an unknown name is a 401, not a 404.
        httpx.post(f"{locked}/v1/models/no-such-model/classify", headers=headers, json={"images": []}),
    ):
        if status == 401:
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"
            assert KEY not in response.text
        else:
            assert response.status_code != 401


def test_probe_exemptions_are_configurable(locked: str) -> None:
    assert httpx.get(f"{locked}/health/ready").status_code == 200  # exempt by default
    assert httpx.get(f"{locked}/metrics").status_code == 401  # exemption switched off here
    assert httpx.get(f"{locked}/metrics", headers={"authorization": f"Bearer {KEY}"}).status_code == 200


def test_cors_allows_only_the_configured_origins(locked: str) -> None:
    ask = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}
    allowed = httpx.options(f"{locked}/v1/models", headers={"origin": ORIGIN, **ask})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(f"{locked}/v1/models", headers={"origin": "https://evil.example", **ask})
    assert "access-control-allow-origin" not in other.headers


def test_responses_do_not_name_the_server(client: httpx.Client) -> None:
    for response in (client.get("/v1/models"), client.get("/v1/models/nope"), client.get("/nowhere")):
        assert "server" not in response.headers and "x-powered-by" not in response.headers


def test_multipart_uploads_stay_in_memory_and_ignore_file_names() -> None:
    """Starlette spools uploads over 1 MiB to a temporary file; ours are parsed from the body in memory,
    and a client's file name (here a path) is never used for anything."""
    big = b"\0" * (3 << 20)
    built = httpx.Request("POST", "http://x/", files=[("images", ("../../etc/evil.png", big, "image/png"))])
    body = built.read()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in built.headers.items()],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    limits = RequestLimits.of(
        Settings(max_images_per_request=4, max_boxes_per_request=8, max_body_bytes=4 << 20)
    )
    images, boxes = asyncio.run(_multipart_images(Request(scope, receive), limits, boxes_field=True))
    assert images == [big] and boxes is None
