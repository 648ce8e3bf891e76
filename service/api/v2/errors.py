"""Errors on ``/v2`` routes answer as the Open Inference Protocol says: ``{"error": "..."}``.

Scoped by a route class, so ``/v1`` keeps its problem+json handlers untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.ServiceError], int] = {
    errors.ModelNotFound: 404,
    errors.ModelNotReady: 503,
    errors.QueueFull: 503,
    errors.PayloadTooLarge: 413,
    errors.ImageTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Unauthorized: 401,
    errors.RequestTimeout: 504,
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": message}), status, headers, media_type="application/json")


def _service_error(exc: errors.ServiceError) -> Response:
    status = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)
    headers = {}
    if isinstance(exc, errors.QueueFull | errors.ModelNotReady) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status, exc.detail, headers)


class V2Route(APIRoute):
    """Wraps the handler (dependencies included) so every error it raises leaves as ``{"error"}``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except errors.ServiceError as exc:
                return _service_error(exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
                return error_response(400, str(first.get("msg")))
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

        return guarded
