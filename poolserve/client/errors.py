"""Typed errors from the service's RFC 9457 ``application/problem+json`` bodies, one class per kind."""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass
class PoolserveError(Exception):
    """A request the service refused or failed; ``detail`` is the service's own explanation."""

    status: int
    detail: str
    type: str = "about:blank"
    title: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.title or self.type}: {self.detail}"


class BadInput(PoolserveError):
    """400, 413, 415, 422: the request (an image, a box, a parameter) cannot be served as sent."""


class Unauthorized(PoolserveError):
    """401: the API key is missing or wrong."""


class ModelNotFound(PoolserveError):
    """404: no model of that name."""


@dataclass
class Unavailable(PoolserveError):
    """503: the model is loading, failed, or its queue is full; ``retry_after_s`` when the server says."""

    retry_after_s: float | None = None


class ServerError(PoolserveError):
    """500, 504 and anything else unexpected."""


_BY_STATUS: dict[int, type[PoolserveError]] = {
    400: BadInput,
    401: Unauthorized,
    404: ModelNotFound,
    413: BadInput,
    415: BadInput,
    422: BadInput,
}


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds; HTTP dates are not sent by poolserve and read as absent."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def error_from(response: httpx.Response) -> PoolserveError:
    """The typed error for a non-2xx response, from its problem+json body when it has one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    detail = str(body.get("detail") or response.reason_phrase)
    type_ = str(body.get("type", "about:blank"))
    title = str(body.get("title", response.reason_phrase))
    if status == 503:
        return Unavailable(status, detail, type_, title, retry_after(response))
    return _BY_STATUS.get(status, ServerError)(status, detail, type_, title)
