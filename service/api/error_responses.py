"""The two ways an error is written, chosen by route family, and the hooks that send every error there.

- ``/v2/...``: the Open Inference Protocol's ``{"error": "<detail>"}``, ``application/json``;
- everything else (``/v1``, health, metrics, docs): RFC 9457 ``application/problem+json``,
  ``{"type", "title", "status", "detail", "instance"}``, the same shape for every status, 422 included.

Handled errors come through FastAPI's exception handlers; unexpected ones through ``ErrorBoundary``, a pure
ASGI middleware, because Starlette's own last-resort handler re-raises after answering, and the server
then drops the keep-alive connection under the client's next request.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poolserve.service import errors
from poolserve.service.api.error_table import WHEN, ErrorInfo, describe
from poolserve.service.api.schemas import Problem

log = logging.getLogger(__name__)

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
    """Every handled error through the one table; add ``ErrorBoundary`` for the unexpected ones."""
    for handled in (errors.ServiceError, HTTPException, RequestValidationError):
        app.add_exception_handler(handled, _handled)


class TrackedSend:
    """``send``, remembering whether the response has started: after that, an error can no longer be
    answered with a status code, and the server has to drop the connection instead."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send, self.started = send, False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class ErrorBoundary:
    """Answers an unexpected exception with a generic 500 in its route family's shape, logs the traceback,
    and does not re-raise, so the connection stays open for the client's next request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if not isinstance(exc, errors.ServiceError):
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if tracked.started:  # too late for a status code: the server has to drop the connection
                raise
            await send_error(scope, send, describe(exc))


def openapi_responses() -> dict[int | str, dict[str, Any]]:
    """The problem responses every /v1 operation may give, for the OpenAPI schema."""
    schema = Problem.model_json_schema()
    return {
        status: {"description": when, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for status, when in WHEN.items()
    }
