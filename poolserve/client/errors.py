"""Typed errors from the service's RFC 9457 ``application/problem+json`` bodies, one class per kind, and
``ConnectionFailed`` for a request that got no HTTP answer at all."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx


# eq=False: exceptions compare and hash by identity, as Python's own do (a dataclass's generated __eq__
# would make them unhashable: no sets of failures, no use as dict keys).
@dataclass(eq=False)
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


@dataclass(eq=False)
class Unavailable(PoolserveError):
    """503: the model is loading, failed, or its queue is full; ``retry_after_s`` when the server says."""

    retry_after_s: float | None = None


class ServerError(PoolserveError):
    """500, 504 and anything else unexpected."""


@dataclass(eq=False)
class ConnectionFailed(PoolserveError):
    """No HTTP answer: the connection was refused or dropped, the host name did not resolve, or the
    request timed out. ``status`` is 0; ``detail`` says which, in a few words; ``retryable`` says whether
    the client retried it (refused or dropped connections: a server restarting comes back)."""

    retryable: bool = False

    def __str__(self) -> str:
        return self.detail


# Timeouts are not retried: the server may still be working on the request, and resending it adds load.
_TIMEOUTS: dict[type[httpx.TimeoutException], str] = {
    httpx.ConnectTimeout: "connection timed out",
    httpx.ReadTimeout: "timed out waiting for the answer",
    httpx.WriteTimeout: "timed out sending the request",
    httpx.PoolTimeout: "timed out waiting for a free connection",
}


def _os_error_in(exc: BaseException) -> OSError | None:
    """The socket error behind httpx's (it wraps httpcore's, which wraps the OS's, sync or async)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError | socket.gaierror):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _connect_detail(exc: httpx.ConnectError) -> str:
    cause = _os_error_in(exc)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve the host name ({cause.strerror})"
    return f"cannot connect ({exc})"


def connection_failed(exc: httpx.TransportError) -> ConnectionFailed:
    """The client's own error for a transport failure, so callers catch ``PoolserveError`` alone."""
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(0, _connect_detail(exc), title="connection failed", retryable=True)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        # Dropped or reset, as a kept-alive connection can be when the server closes it just as the
        # request goes out; inference changes nothing on the server, so sending it again is safe.
        detail = f"the server dropped the connection ({exc or type(exc).__name__})"
        return ConnectionFailed(0, detail, title="connection failed", retryable=True)
    if isinstance(exc, httpx.TimeoutException):
        detail = _TIMEOUTS.get(type(exc), "timed out")
        return ConnectionFailed(0, detail, title="timed out")
    return ConnectionFailed(0, f"{type(exc).__name__}: {exc}", title="connection failed")


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
    if status == 404 and not type_.endswith("/model-not-found"):  # another path: a wrong base URL?
        return ServerError(
            status, f"{detail} ({response.request.url}: is the base URL poolserve's?)", type_, title
        )
    return _BY_STATUS.get(status, ServerError)(status, detail, type_, title)


def refused(detail: str) -> BadInput:
    """A request the client will not send, for a reason the server would refuse it for too."""
    return BadInput(0, detail, title="refused before sending")


def unexpected_answer(status: int, detail: str) -> ServerError:
    """A 2xx answer this client cannot read (not poolserve's, or from another version of it)."""
    return ServerError(status, detail, title="unexpected answer")
