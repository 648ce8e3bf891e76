"""uvicorn's HTTP protocols with a deadline on request headers.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a connection that has sent
part of a request head (or nothing at all) waits forever: thousands of them hold as many file
descriptors. These subclasses give every request head ``header_timeout_s`` from its first byte (or from
the connection's opening) to be complete; past it the connection is closed without a response, as
nginx's ``client_header_timeout`` does. Once the head is in, the body is bounded by the request's own
time limit (``request_timeout_s``), which the app enforces.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class ServerConfig(uvicorn.Config):
    """uvicorn's config plus the header deadline, which the protocols below read."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s


class _HeaderDeadline:
    """Mixed into a uvicorn protocol: both keep ``cycle``, ``transport`` and ``loop`` under these names."""

    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self._header_timeout_s: float = getattr(config, "header_timeout_s", 0.0)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        if not self._between_requests():
            self._disarm()  # the head is complete: a request is in progress

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        if self._header_timeout_s > 0:
            self._header_timer = self.loop.call_later(self._header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


class HttpToolsWithHeaderDeadline(_HeaderDeadline, HttpToolsProtocol):  # type: ignore[misc]
    pass


class H11WithHeaderDeadline(_HeaderDeadline, H11Protocol):  # type: ignore[misc]
    pass


def protocol_class() -> type[asyncio.Protocol]:
    """httptools where it is installed (uvicorn's own preference), else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - the runtime lock and the dev venv both have it
        return H11WithHeaderDeadline
    return HttpToolsWithHeaderDeadline
