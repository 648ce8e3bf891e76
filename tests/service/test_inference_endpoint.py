"""The inference routes' two ways in: the ``InferenceEndpoint`` that serves them, and their FastAPI
declaration, which documents them and must answer every request the same way."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.requests import Request

from bench.targets.poolserve_variants import served_by_fastapi
from poolserve.service.api.inference_endpoint import openapi_body, parse_query
from poolserve.service.api.payloads import ClassifyForm, ClassifyJSON
from poolserve.service.app import create_app
from poolserve.service.settings import Settings
from tests.service.conftest import DATA, REPOSITORY

KEY = "s3cret"
DIGIT = sorted((DATA / "digits").glob("*.png"))[0].read_bytes()


class Query(BaseModel):
    top_k: int = Field(5, ge=1, description="how many")
    mode: str = "a"


def _request(query_string: bytes) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": query_string, "headers": []}
    return Request(scope)


def test_query_parsing_validates_like_fastapi() -> None:
    assert parse_query(_request(b"top_k=3&other=ignored"), Query) == Query(top_k=3, mode="a")
    assert parse_query(_request(b""), Query) == Query.model_validate({"top_k": 5, "mode": "a"})
    for bad, kind in ((b"top_k=0", "greater_than_equal"), (b"top_k=many", "int_parsing")):
        with pytest.raises(RequestValidationError) as caught:
            parse_query(_request(bad), Query)
        (error,) = caught.value.errors()
        assert error["loc"] == ("query", "top_k") and error["type"] == kind


def test_the_openapi_operations_are_generated_from_the_payload_models() -> None:
    schema = create_app(Settings(repository=REPOSITORY)).openapi()
    classify = schema["paths"]["/v1/models/{name}/classify"]
    assert list(classify) == ["post"]  # the serving route is not documented a second time
    post = classify["post"]
    body = post["requestBody"]["content"]
    expected = openapi_body({"multipart/form-data": ClassifyForm, "application/json": ClassifyJSON})
    for media_type in ("multipart/form-data", "application/json"):
        assert body[media_type] == expected["requestBody"]["content"][media_type]
    assert body["image/png"]["schema"] == {"type": "string", "format": "binary"}
    top_k = {p["name"]: p for p in post["parameters"]}["top_k"]
    assert (top_k["in"], top_k["schema"]["minimum"], top_k["schema"]["default"]) == ("query", 1, 5)
    assert post["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    features = schema["paths"]["/v1/models/{name}/features"]["post"]
    item = features["requestBody"]["content"]["application/json"]["schema"]["properties"]["items"]
    assert "$ref" not in orjson.dumps(item).decode()  # nested models inlined
    assert item["items"]["required"] == ["image", "boxes"]
    assert [p["name"] for p in features["parameters"]] == ["name", "top_k", "encoding"]


# (name, URL, expected status, body: raw bytes with a content type, or JSON with "<digit>" for the base64
# digit), each sent with the API key unless it says otherwise
REQUESTS: list[tuple[str, str, int, dict[str, Any]]] = [
    ("classify", "/v1/models/lenet5-mnist/classify?top_k=3", 200, {"raw": DIGIT, "type": "image/png"}),
    ("classify JSON", "/v1/models/lenet5-mnist/classify", 200, {"json": {"images": ["<digit>"]}}),
    (
        "features",
        "/v1/models/digits-roialign/features",
        200,
        {"json": {"items": [{"image": "<digit>", "boxes": [[2, 2, 20, 20]]}]}},
    ),
    ("no key", "/v1/models/lenet5-mnist/classify", 401, {"raw": DIGIT, "type": "image/png", "no_key": True}),
    ("unknown model", "/v1/models/nope/classify", 404, {"raw": DIGIT, "type": "image/png"}),
    ("bad top_k", "/v1/models/lenet5-mnist/classify?top_k=0", 422, {"raw": DIGIT, "type": "image/png"}),
    ("wrong task", "/v1/models/lenet5-mnist/features", 400, {"json": {"items": []}}),
    ("bad JSON", "/v1/models/lenet5-mnist/classify", 400, {"raw": b"{", "type": "application/json"}),
    (
        "v2 wrong version",
        "/v2/models/lenet5-mnist/versions/9/infer",
        404,
        {"raw": b"{}", "type": "application/json"},
    ),
    ("v2 bad body", "/v2/models/lenet5-mnist/infer", 400, {"raw": b"{", "type": "application/json"}),
    # Not a POST: past the dispatch, to the framework's routing.
    ("GET", "/v1/models/lenet5-mnist/classify", 405, {"raw": b"", "type": "image/png", "method": "GET"}),
    ("PUT", "/v2/models/lenet5-mnist/infer", 405, {"raw": b"", "type": "image/png", "method": "PUT"}),
]


async def answers(app: FastAPI) -> list[tuple[int, str, Any]]:
    """Each of ``REQUESTS`` through ``app`` (lifespan run, models loaded): status, content type, body."""
    digit = base64.b64encode(DIGIT)
    results = []
    async with app.router.lifespan_context(app):
        await app.state.runtime.registry.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for _, url, _, body in REQUESTS:
                headers = {} if body.get("no_key") else {"Authorization": f"Bearer {KEY}"}
                if "json" in body:
                    content = orjson.dumps(body["json"]).replace(b"<digit>", digit)
                    headers["Content-Type"] = "application/json"
                else:
                    content = body["raw"]
                    headers["Content-Type"] = body["type"]
                method = body.get("method", "POST")
                response = await client.request(method, url, content=content, headers=headers)
                results.append((response.status_code, response.headers["content-type"], response.json()))
    return results


@pytest.fixture(scope="module")
def both_ways() -> tuple[list[Any], list[Any]]:
    settings = Settings(repository=REPOSITORY, api_key=KEY)
    lean = asyncio.run(answers(create_app(settings)))
    declared = asyncio.run(answers(served_by_fastapi(create_app(settings))))
    return lean, declared


@pytest.mark.parametrize("index", range(len(REQUESTS)), ids=[r[0] for r in REQUESTS])
def test_both_ways_in_answer_alike(both_ways: tuple[list[Any], list[Any]], index: int) -> None:
    lean, declared = both_ways
    assert lean[index][0] == REQUESTS[index][2], lean[index]
    # One request at a time, so every batch holds one image in both apps: even the scores are equal.
    assert lean[index] == declared[index]


def test_handled_errors_are_not_logged_as_unexpected(
    both_ways: tuple[list[Any], list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """The dispatch sends inference errors to ``RequestGuard``'s boundary, which logs only a 500."""
    caplog.clear()
    with caplog.at_level("ERROR", logger="poolserve"):
        asyncio.run(answers(create_app(Settings(repository=REPOSITORY, api_key=KEY))))
    assert not [r for r in caplog.records if "unhandled error" in r.getMessage()]
