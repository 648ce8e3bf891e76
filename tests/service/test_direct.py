"""Direct routes: documented like FastAPI routes, called without its dependency solving."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from poolserve.service.api.direct import DirectRoute, openapi_parameters, parse_query
from poolserve.service.api.routes.classify import ClassifyQuery
from poolserve.service.app import create_app
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY


class Query(BaseModel):
    top_k: int = Field(5, ge=1, description="how many")
    mode: str = "a"


def _request(query_string: bytes) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": query_string, "headers": []}
    return Request(scope)


async def _endpoint(request: Request) -> Response:
    return Response()


def test_a_direct_route_refuses_dependencies_it_would_not_run() -> None:
    router = APIRouter(route_class=DirectRoute)
    with pytest.raises(TypeError, match="runs no dependencies"):
        router.add_api_route("/x", _endpoint, methods=["POST"], dependencies=[Depends(lambda: None)])


def test_query_parsing_validates_like_fastapi() -> None:
    assert parse_query(_request(b"top_k=3&other=ignored"), Query) == Query(top_k=3, mode="a")
    assert parse_query(_request(b""), Query) == Query.model_validate({"top_k": 5, "mode": "a"})
    for bad, kind in ((b"top_k=0", "greater_than_equal"), (b"top_k=many", "int_parsing")):
        with pytest.raises(RequestValidationError) as caught:
            parse_query(_request(bad), Query)
        (error,) = caught.value.errors()
        assert error["loc"] == ("query", "top_k") and error["type"] == kind


def test_openapi_parameters_are_what_fastapi_derives_from_a_signature() -> None:
    parameters = openapi_parameters(Query)
    assert parameters[0] == {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "title": "Name"},
    }
    top_k: dict[str, Any] = parameters[1]
    assert (top_k["name"], top_k["in"], top_k["required"]) == ("top_k", "query", False)
    assert top_k["schema"]["minimum"] == 1 and top_k["schema"]["default"] == 5
    assert top_k["description"] == "how many"


def test_the_inference_routes_are_direct_and_documented() -> None:
    app: FastAPI = create_app(Settings(repository=REPOSITORY))
    schema = app.openapi()
    classify = schema["paths"]["/v1/models/{name}/classify"]["post"]
    assert [p["name"] for p in classify["parameters"]] == ["name", "top_k"]
    assert classify["parameters"] == openapi_parameters(ClassifyQuery)
    assert classify["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    features = schema["paths"]["/v1/models/{name}/features"]["post"]
    assert [p["name"] for p in features["parameters"]] == ["name", "top_k", "encoding"]
