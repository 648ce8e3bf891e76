"""``RequestGuard``: the one middleware around every HTTP request, pure ASGI.

One layer instead of one per concern, because each layer costs a call frame, a ``send`` wrapper and its
own bookkeeping on every request (``python -m bench.hotpath`` times each). In the order a request meets
them:

- the body size limit: 413 from ``Content-Length`` before anything is read; a body of undeclared length
  (chunked) is counted as it streams, and ``receive`` raises ``PayloadTooLarge`` past the limit;
- the time limit (``poolserve.service.api.deadlines``): 504 once the request has run ``timeout_s``;
  the cancellation also drops its queued inference;
- the app's ``DecodeSlots`` for the request (``poolserve.service.api.offload``);
- the error boundary: an exception nothing handled becomes a 500 in its route family's shape, logged with
  its traceback, and is not re-raised, because Starlette's last-resort handler re-raises after answering
  and the server then drops the keep-alive connection under the client's next request;
- request metrics by route template, model and status, the guard's own answers included.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poolserve.service import errors
from poolserve.service.api.deadlines import Deadlines
from poolserve.service.api.error_responses import send_error
from poolserve.service.api.error_table import describe
from poolserve.service.api.offload import DecodeSlots, current_decode_slots
from poolserve.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class ResponseStatus:
    """``send``, remembering the response's status; once it has started, an error can no longer be
    answered with a status code, and the server has to drop the connection instead."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send, self.status = send, 0

    @property
    def started(self) -> bool:
        return self.status != 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        max_body_bytes: int,
        timeout_s: float,
        decode_slots: DecodeSlots,
    ) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes
        self.deadlines = Deadlines(timeout_s)
        self.decode_slots = decode_slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response = ResponseStatus(send)
        try:
            await self._bounded(scope, receive, response)
        finally:
            template = getattr(scope.get("route"), "path", "<unmatched>")
            model = scope.get("state", {}).get("model", "")  # set by deps.tagged_model
            seconds = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], template, model, response.status or 500, seconds)

    async def _bounded(self, scope: Scope, receive: Receive, response: ResponseStatus) -> None:
        declared = declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await send_error(scope, response, describe(errors.PayloadTooLarge(self._too_large)))
            return
        if declared is None:  # a declared length is all the server delivers; anything else is counted
            receive = self._counted(receive)
        deadline = self.deadlines.start()
        slots = current_decode_slots.set(self.decode_slots)
        try:
            await self.app(scope, receive, response)
        except asyncio.CancelledError:
            if not deadline.absorb():
                raise
            if response.started:  # too late for a status code; let the server drop the connection
                log.warning("%s %s ran past its time limit mid-response", scope["method"], scope["path"])
                raise TimeoutError from None
            seconds = self.deadlines.seconds
            timeout = errors.RequestTimeout(f"the request took longer than {seconds:g} s")
            await send_error(scope, response, describe(timeout))
        except Exception as exc:
            if not isinstance(exc, errors.ServiceError):
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if response.started:
                raise
            await send_error(scope, response, describe(exc))
        finally:
            deadline.absorb()  # expired as the request finished: the cancellation must not outlive it
            self.deadlines.finish(deadline)
            current_decode_slots.reset(slots)

    @property
    def _too_large(self) -> str:
        return f"the request body exceeds {self.max_body_bytes} bytes"

    def _counted(self, receive: Receive) -> Receive:
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise errors.PayloadTooLarge(self._too_large)
            return message

        return counting_receive
