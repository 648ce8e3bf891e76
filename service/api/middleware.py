"""Pure ASGI middleware: request metrics, a per-request time limit, and a streamed body-size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so bodies stream through untouched and cancellation works.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poolserve.service import errors
from poolserve.service.api.error_responses import TrackedSend, send_error
from poolserve.service.api.error_table import describe
from poolserve.service.metrics import ServiceMetrics


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "<unmatched>")
            model = scope.get("state", {}).get("model", "")  # set by deps.tagged_model
            self.metrics.observe_request(
                scope["method"], template, model, status, time.perf_counter() - started
            )


class RequestTimeout:
    """Answers 504 when a request runs past ``seconds``; cancelling it also drops its queued inference."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracked)
        except TimeoutError:
            if tracked.started:  # too late for a status code; let the server drop the connection
                raise
            timeout = errors.RequestTimeout(f"the request took longer than {self.seconds:g} s")
            await send_error(scope, send, describe(timeout))


class BodySizeLimit:
    """413 from ``Content-Length`` before reading anything, else once the streamed body passes the limit.

    Past the limit, ``receive`` raises ``PayloadTooLarge``, which the error handlers turn into 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"the request body exceeds {self.max_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(scope, send, describe(errors.PayloadTooLarge(detail)))
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise errors.PayloadTooLarge(detail)
            return message

        await self.app(scope, counting_receive, send)
