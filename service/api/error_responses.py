"""The two ways an error is written, chosen by route family, and the hooks that send every error there.

- ``/v2/...``: the Open Inference Protocol's ``{"error": "<detail>"}``, ``application/json``;
- everything else (``/v1``, health, metrics, docs): RFC 9457 ``application/problem+json``,
  ``{"type", "title", "status", "detail", "instance"}``, the same shape for every status, 422 included.

Handled errors come through FastAPI's exception handlers; unexpected ones through the error boundary of
``RequestGuard`` (``poolserve.service.api.middleware``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Message, Scope, Send

from poolserve.service import errors
from poolserve.service.api.error_table import WHEN, ErrorInfo, describe
from poolserve.service.api.schemas import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"


def is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def problem_body(info: ErrorInfo, instance: str) -> bytes:
    return orjson.dumps(
        {
            "type": info.type,
            "title": info.title,
            "status": info.status,
            "detail": info.detail,
            "instance": instance,
        }
    )


def v2_body(info: ErrorInfo) -> bytes:
    return orjson.dumps({"error": info.detail})


def render(path: str, info: ErrorInfo) -> Response:
    """``info`` as the family of ``path`` writes errors."""
    if is_v2(path):
        return Response(v2_body(info), info.status, info.headers, media_type="application/json")
    return Response(problem_body(info, path), info.status, info.headers, media_type=PROBLEM_MEDIA_TYPE)


def v2_error(status: int, detail: str) -> Response:
    """A /v2 route's own non-exception error answer (e.g. a readiness probe's 503)."""
    return render("/v2", ErrorInfo(status, "about:blank", detail))


async def send_error(scope: Scope, send: Send, info: ErrorInfo) -> None:
    """``render`` for pure ASGI middleware, which answers without a ``Request``."""
    await render(scope.get("path", ""), info)(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


async def _handled(request: Request, exc: Exception) -> Response:
    return render(request.url.path, describe(exc))


def install(app: FastAPI) -> None:
    """Every handled error through the one table; ``RequestGuard`` catches the unexpected ones."""
    for handled in (errors.ServiceError, HTTPException, RequestValidationError):
        app.add_exception_handler(handled, _handled)


def openapi_responses() -> dict[int | str, dict[str, Any]]:
    """The problem responses every /v1 operation may give, for the OpenAPI schema."""
    schema = Problem.model_json_schema()
    return {
        status: {"description": when, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for status, when in WHEN.items()
    }
