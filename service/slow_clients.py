"""uvicorn's HTTP protocols, limiting slow or hostile clients: head deadline and size, write deadline.

- **Head deadline.** uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a
  connection that has sent part of a request head (or nothing at all) waits forever: thousands of them
  hold as many file descriptors. Every request head gets ``header_timeout_s`` from its first byte (or
  from the connection's opening) to be complete; past it the connection is closed without a response,
  as nginx's ``client_header_timeout`` does. Once the head is in, the body is bounded by the request's
  own time limit (``request_timeout_s``), which the app enforces.
- **Head size.** httptools keeps every header line it is sent, so within that deadline one connection
  could make the server hold a head of any size, in memory. A head still incomplete past
  ``MAX_HEAD_BYTES`` is answered 431 (problem+json) and the connection closed, as nginx's
  ``large_client_header_buffers``; so is one that arrives whole, in one read, past it.
- **Write deadline.** A client that stops reading its response leaves it in the server's write buffer;
  closing such a connection waits for the buffer to drain, which never happens, so the connection, its
  slot under ``max_connections`` and the buffered response were held for good. Once the transport's
  buffer is full, the client has ``write_timeout_s`` to start reading again, else the connection is
  aborted (its buffer dropped), as nginx's ``send_timeout`` does.
- **Connection limit.** Past ``max_connections`` open connections (or requests in progress) a request is
  answered at once with the service's own 503 (problem+json, or ``{"error"}`` under ``/v2``) with
  ``Retry-After``, and its connection closed; uvicorn's would be a bare ``text/plain`` 503.
- **Unparseable requests.** A request line or head that is not HTTP/1.1 is answered 400 problem+json
  and the connection closed, instead of uvicorn's ``text/plain`` line.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from poolserve.service.api.error_responses import PROBLEM_MEDIA_TYPE, problem_body, send_error
from poolserve.service.api.error_table import ErrorInfo

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; browsers and proxies stay far below
_CLOSE = {"Connection": "close"}  # every answer here ends its connection
_HEAD_TOO_LARGE = ErrorInfo(
    431, "/problems/head-too-large", f"the request line and headers exceed {MAX_HEAD_BYTES} bytes", _CLOSE
)
_MALFORMED = ErrorInfo(
    400,
    "/problems/malformed-http",
    "the request is not valid HTTP/1.1: its request line or headers could not be parsed",
    _CLOSE,
)
CONNECTION_LIMIT_RETRY_AFTER_S = 1

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _raw_problem(info: ErrorInfo, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole problem+json response, for errors found before there is a request to hand the app (and
    so no path: ``instance`` is empty)."""
    body = problem_body(info, "")
    head = [b"HTTP/1.1 %d %s" % (info.status, info.title.encode())]
    head += [name + b": " + value for name, value in default_headers]
    head += [f"{name.lower()}: {value}".encode() for name, value in info.headers.items()]
    head += [b"content-type: " + PROBLEM_MEDIA_TYPE.encode(), b"content-length: %d" % len(body)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _head_bytes(scope: Scope) -> int:
    """About the size of a request's head as sent: its target and its header lines."""
    target = len(scope["raw_path"]) + len(scope["query_string"])
    return target + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def _answering(info: ErrorInfo) -> ASGIApp:
    """The ASGI app that answers every request with ``info``, in its route family's shape."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(scope, send, info)

    return answer


_refuse_long_head = _answering(_HEAD_TOO_LARGE)


@functools.lru_cache(maxsize=8)  # one per limit, not one per connection
def over_connection_limit(limit: int) -> ASGIApp:
    """The ASGI app that answers a request past ``limit`` connections or requests in progress."""
    return _answering(
        ErrorInfo(
            503,
            "/problems/too-many-connections",
            f"the server has {limit} connections or requests in progress, its limit (max_connections); "
            f"retry after {CONNECTION_LIMIT_RETRY_AFTER_S} s",
            {"Retry-After": str(CONNECTION_LIMIT_RETRY_AFTER_S), **_CLOSE},
        )
    )


class ServerConfig(uvicorn.Config):
    """uvicorn's config plus the header and write deadlines, which the protocols below read."""

    def __init__(
        self, *args: Any, header_timeout_s: float, write_timeout_s: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.write_timeout_s = write_timeout_s


class _ClientLimits:
    """Mixed into a uvicorn protocol: both keep ``cycle``, ``transport`` and ``loop`` under these names."""

    cycle: Any
    scope: Any  # the request being read: complete, with its headers, when ``app`` is read
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    tasks: set[asyncio.Task[None]]
    limit_concurrency: int | None
    logger: Any
    server_state: Any

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self._header_timeout_s: float = getattr(config, "header_timeout_s", 0.0)
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # received of the request head in progress
        self._write_timeout_s: float = getattr(config, "write_timeout_s", 0.0)
        self._write_timer: asyncio.TimerHandle | None = None
        self._long_chunk = False
        # uvicorn checks its limit_concurrency before it reads ``self.app`` for a new request, and answers
        # text/plain past it; with the check moved into the ``app`` property below, the answer is ours.
        self._connection_limit: int | None = self.limit_concurrency
        self._refuse = over_connection_limit(self._connection_limit or 0)
        self.limit_concurrency = None

    # uvicorn's protocols assign ``self.app`` once (the loaded app) and read it once per request, when its
    # head is complete and before its task starts: the place for checks on the request as a whole.
    @property
    def app(self) -> Any:
        limit = self._connection_limit
        # ``connections`` counts this one; ``tasks`` not yet this request's: at most ``limit`` of each.
        if limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            self.logger.warning("Exceeded concurrency limit.")
            return self._refuse
        if self._long_chunk and _head_bytes(self.scope) > MAX_HEAD_BYTES:
            return _refuse_long_head
        return self._app

    @app.setter
    def app(self, value: Any) -> None:
        self._app = value

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_raw_problem(_MALFORMED, self.server_state.default_headers))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm()  # the first bytes of the next request on a kept-alive connection
        heading = self._between_requests()
        # Only a chunk this long can complete a head past the cap; then the head is measured (``app``).
        self._long_chunk = self._head_bytes + len(data) > MAX_HEAD_BYTES
        super().data_received(data)  # type: ignore[misc]
        if not self._between_requests():
            self._disarm()  # the head is complete: a request is in progress
        elif heading and not self.transport.is_closing():
            self._head_bytes += len(data)  # counted only while the head is still incomplete after it
            if self._head_bytes > MAX_HEAD_BYTES:
                self._disarm()
                self.transport.write(_raw_problem(_HEAD_TOO_LARGE, self.server_state.default_headers))
                self.transport.close()

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self._write_timeout_s > 0 and self._write_timer is None:
            self._write_timer = self.loop.call_later(self._write_timeout_s, self._stalled_reader)

    def resume_writing(self) -> None:
        self._stop_write_timer()
        super().resume_writing()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_write_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _stop_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _stalled_reader(self) -> None:
        self._write_timer = None
        self.transport.abort()  # close() would wait for a buffer the client never drains

    def _between_requests(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        if self._header_timeout_s > 0:
            self._header_timer = self.loop.call_later(self._header_timeout_s, self._expire)

    def _disarm(self) -> None:
        self._head_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


class HttpToolsWithClientLimits(_ClientLimits, HttpToolsProtocol):  # type: ignore[misc]
    pass


class H11WithClientLimits(_ClientLimits, H11Protocol):  # type: ignore[misc]
    pass


def protocol_class() -> type[asyncio.Protocol]:
    """httptools where it is installed (uvicorn's own preference), else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - the runtime lock and the dev venv both have it
        return H11WithClientLimits
    return HttpToolsWithClientLimits
