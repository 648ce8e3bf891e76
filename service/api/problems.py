"""The one place domain exceptions become HTTP: RFC 9457 ``application/problem+json`` responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service import errors
from service.api.schemas import Problem

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS: dict[type[errors.ServiceError], int] = {
    errors.ModelNotFound: 404,
    errors.ModelNotReady: 503,
    errors.WrongTask: 400,
    errors.InvalidRequest: 400,
    errors.InvalidField: 422,
    errors.InvalidImage: 400,
    errors.UnsupportedMediaType: 415,
    errors.ImageTooLarge: 413,
    errors.PayloadTooLarge: 413,
    errors.LimitExceeded: 422,
    errors.QueueFull: 503,
    errors.RequestTimeout: 504,
    errors.Unauthorized: 401,
    errors.ProviderUnavailable: 503,
}


_WHEN = {
    400: "unparseable body: not JSON, not base64, not an image, malformed multipart",
    401: "API key configured and missing or wrong",
    404: "no such model",
    413: "body over max_body_bytes, or an image over max_image_pixels",
    415: "unsupported Content-Type",
    422: "a field or parameter is missing, unknown, of the wrong type or out of range; a limit exceeded",
    500: "unexpected; logged, never detailed",
    503: "model loading or failed, or its queue is full (Retry-After)",
    504: "past request_timeout_s",
}


def openapi_responses() -> dict[int | str, dict[str, Any]]:
    """The problem responses every /v1 operation may give, for the OpenAPI schema."""
    schema = Problem.model_json_schema()
    return {
        status: {"description": when, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for status, when in _WHEN.items()
    }


def _slug(exc_type: type) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in exc_type.__name__).lstrip("-")


def problem_response(
    status: int,
    detail: str,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> Response:
    body = {"type": type_, "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def status_for(exc: errors.ServiceError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ServiceError)
    headers = {}
    if isinstance(exc, errors.QueueFull | errors.ModelNotReady) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return problem_response(
        status_for(exc), exc.detail, f"/problems/{_slug(type(exc))}", headers, instance=request.url.path
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(exc.status_code, str(exc.detail), headers=exc.headers, instance=request.url.path)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors_ = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    # The detail names each offending parameter and what it expected, e.g. "query parameter 'top_k': ...".
    named = "; ".join(
        f"{e['loc'][0]} parameter {'.'.join(str(p) for p in e['loc'][1:])!r}: {e['msg']}"
        if len(e["loc"]) > 1
        else str(e["msg"])
        for e in errors_[:5]
    )
    return problem_response(422, named, "/problems/validation", errors=errors_, instance=request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        500, "an unexpected error occurred; it has been logged", instance=request.url.path
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
