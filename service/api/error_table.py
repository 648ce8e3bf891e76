"""The one table from an exception to what the client is told: status, type, title, detail, headers.

Every error leaves through here, whatever raised it: domain errors (``poolserve.service.errors``), Starlette's
HTTP errors (unrouted path, wrong method), FastAPI's parameter validation, the pure ASGI limits, and
anything unexpected (500, a generic detail; the traceback goes to the log, never to the client). How the
description is written on the wire depends on the route family: ``poolserve.service.api.error_responses``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from poolserve.service import errors

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

UNEXPECTED_DETAIL = "an unexpected error occurred; it has been logged"

# When each status is given: the OpenAPI description of the error responses.
WHEN = {
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


@dataclass(frozen=True)
class ErrorInfo:
    status: int
    type: str  # "/problems/<slug>" for poolserve's own errors, "about:blank" for plain HTTP ones
    detail: str  # safe to show the client: names what was wrong with the request, never internals
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase


def slug(exc_type: type) -> str:
    """``InvalidField`` -> ``invalid-field``."""
    return "".join("-" + c.lower() if c.isupper() else c for c in exc_type.__name__).lstrip("-")


def status_for(exc: errors.ServiceError) -> int:
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 500)


def describe(exc: BaseException) -> ErrorInfo:
    """What the client is told about ``exc``; an exception not listed here is a 500 with no detail."""
    if isinstance(exc, errors.ServiceError):
        return ErrorInfo(status_for(exc), f"/problems/{slug(type(exc))}", exc.detail, _headers(exc))
    if isinstance(exc, RequestValidationError):
        return ErrorInfo(422, "/problems/validation", _validation_detail(exc))
    if isinstance(exc, HTTPException):
        return ErrorInfo(exc.status_code, "about:blank", str(exc.detail), dict(exc.headers or {}))
    return ErrorInfo(500, "about:blank", UNEXPECTED_DETAIL)


def _headers(exc: errors.ServiceError) -> dict[str, str]:
    if isinstance(exc, errors.QueueFull | errors.ModelNotReady) and exc.retry_after_s is not None:
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, errors.Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    return {}


def _validation_detail(exc: RequestValidationError) -> str:
    """Each offending parameter and what it expected, e.g. ``query parameter 'top_k': ...``."""
    return "; ".join(
        f"{e['loc'][0]} parameter {'.'.join(str(p) for p in e['loc'][1:])!r}: {e['msg']}"
        if len(e["loc"]) > 1
        else str(e["msg"])
        for e in exc.errors()[:5]
    )
