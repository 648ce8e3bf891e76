"""``RequestGuard``: the one middleware around every HTTP request, pure ASGI.

One layer instead of one per concern, because each layer costs a call frame, a ``send`` wrapper and its
own bookkeeping on every request (``python -m bench.hotpath`` times each). In the order a request meets
them:

- HEAD, answered as the GET it stands for, without the body;
- the body size limit: 413 from ``Content-Length`` before anything is read; a body of undeclared length
  (chunked) is counted as it streams, and ``receive`` raises ``PayloadTooLarge`` past the limit;
- the time limit (``Deadlines``, below): 504 once the request has run ``timeout_s``;
  the cancellation also drops its queued inference; past it mid-response, too late for a status, the
  connection is dropped (``ResponseCutShortError``), logged once as a warning and counted as 504;
- the app's ``DecodeSlots`` for the request (``poolserve.service.api.offload``);
- the error boundary: an exception that reaches it is answered through the one error table in its route
  family's shape, as the app's exception handlers would (the inference routes, dispatched past those
  handlers, rely on this); one the table does not know becomes a 500, logged with its traceback, and
  is not re-raised, because Starlette's last-resort handler re-raises after answering and the server
  then drops the keep-alive connection under the client's next request;
- request metrics by route template, model and status, the guard's own answers included; a request
  whose client hung up before it arrived whole is counted as 499 (nginx's "client closed request").
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poolserve.service import errors
from poolserve.service.api.error_responses import send_error
from poolserve.service.api.error_table import STATUS, describe
from poolserve.service.api.offload import DecodeSlots, current_decode_slots
from poolserve.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request its client abandoned; never sent
SERVER_LOGGER = "uvicorn.error"


class ResponseCutShortError(TimeoutError):
    """Raised to the server to have it drop a connection whose response has started but cannot finish in
    time: raising is the only way an ASGI app can. The guard has logged it; the server need not."""


class ServerLogFilter(logging.Filter):
    """Keeps the server's "Exception in ASGI application" traceback out of the log for a
    ``ResponseCutShortError``: an expected outcome, already logged as one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseCutShortError))


def quiet_expected_drops() -> None:
    """Installs ``ServerLogFilter`` on the server's logger, once per process (logging is process-wide)."""
    server_log = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ServerLogFilter) for f in server_log.filters):
        server_log.addFilter(ServerLogFilter())


class Deadline:
    """One request's time limit (``Deadlines.start``)."""

    __slots__ = ("at", "cancelling", "expired", "task")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task, self.at = task, at
        self.cancelling = task.cancelling()  # cancellations requested before ours: not ours to absorb
        self.expired = False

    def absorb(self) -> bool:
        """Withdraws this deadline's cancellation of the task, if it made one (once); whether the task's
        cancellation was this deadline's alone, as ``asyncio.timeout`` decides when to raise
        ``TimeoutError``."""
        if not self.expired:
            return False
        self.expired = False
        return self.task.uncancel() <= self.cancelling


class Deadlines:
    """The request time limit: every request's task is cancelled once it has run for ``seconds``.

    Every request gets the same limit, so deadlines fall in arrival order: one timer, armed for the oldest
    open request, serves them all. Starting and finishing a request is a dict insert and delete, where
    ``asyncio.timeout`` arms, reschedules and cancels a timer of the event loop per request. Expiry follows
    ``asyncio.timeout``: the task is cancelled, and the caller turns that cancellation (and only that one)
    into a timeout with ``Deadline.absorb``.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._open: dict[Deadline, None] = {}  # insertion order is deadline order
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> Deadline:
        """A deadline for the running task, ``seconds`` from now."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an app served by another loop than before (tests, restarts)
            self._loop, self._timer = loop, None
            self._open.clear()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a request deadline needs the request's task")
        deadline = Deadline(task, loop.time() + self.seconds)
        self._open[deadline] = None
        if self._timer is None:
            self._timer = loop.call_at(deadline.at, self._expire, loop)
        return deadline

    def finish(self, deadline: Deadline) -> None:
        self._open.pop(deadline, None)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a timer left on a loop the app no longer runs on
            return
        self._timer = None
        now = loop.time()
        while self._open:
            oldest = next(iter(self._open))
            if oldest.at > now:
                self._timer = loop.call_at(oldest.at, self._expire, loop)
                return
            del self._open[oldest]
            oldest.expired = True
            oldest.task.cancel()


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
        method = scope["method"]
        if method == "HEAD":
            # HEAD is GET without the body (RFC 9110 §9.3.2), wherever GET is served: the app answers
            # the GET in a copy of the scope, and the server, whose scope still says HEAD, drops the body.
            scope = dict(scope, method="GET")
        try:
            await self._bounded(scope, receive, response)
        finally:
            template = getattr(scope.get("route"), "path", "<unmatched>")
            model = scope.get("state", {}).get("model", "")  # set by deps.tagged_model
            seconds = time.perf_counter() - started
            self.metrics.observe_request(method, template, model, response.status or 500, seconds)

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
                log.warning(
                    "%s %s ran past its time limit mid-response; its connection is dropped",
                    scope["method"],
                    scope["path"],
                )
                response.status = STATUS[errors.RequestTimeout]  # for the metrics: what the request came to
                raise ResponseCutShortError from None
            seconds = self.deadlines.seconds
            timeout = errors.RequestTimeout(f"the request took longer than {seconds:g} s")
            await send_error(scope, response, describe(timeout))
        except ClientDisconnect:
            # The client hung up before its request arrived whole: nobody is left to answer, and nothing
            # on the server failed. Counted under nginx's 499, not as a server error.
            response.status = response.status or CLIENT_CLOSED_REQUEST
            log.info("%s %s: the client disconnected mid-request", scope["method"], scope["path"])
        except Exception as exc:
            info = describe(exc)
            if info.status == 500:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if response.started:
                raise
            await send_error(scope, response, info)
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
