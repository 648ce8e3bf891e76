"""``RequestGuard`` around small ASGI apps: its time limit, its error boundary and its metrics, each told
apart from the others (the served app's own limits are in test_limits.py and test_problems.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from poolserve.service.api.middleware import RequestGuard, quiet_expected_drops
from poolserve.service.api.offload import DecodeSlots, current_decode_slots
from poolserve.service.metrics import ServiceMetrics

Message = MutableMapping[str, Any]


def scope(path: str = "/v1/models/m/classify") -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": [], "state": {}}


async def call(guard: RequestGuard, path: str = "/v1/models/m/classify") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await guard(scope(path), receive, send)
    return sent


def guarded(app: Any, timeout_s: float = 30.0, metrics: ServiceMetrics | None = None) -> RequestGuard:
    return RequestGuard(app, metrics or ServiceMetrics(), 1024, timeout_s, DecodeSlots(1))


async def answer(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def never_answers(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.Event().wait()


def test_a_request_past_the_deadline_is_cancelled_and_answered_504() -> None:
    # A zero time limit expires at the loop's next turn: exactly when the app first waits.
    sent = asyncio.run(call(guarded(never_answers, timeout_s=0)))
    assert sent[0]["status"] == 504
    problem = orjson.loads(sent[1]["body"])
    assert problem["type"] == "/problems/request-timeout"
    assert problem["detail"] == "the request took longer than 0 s"


def test_a_request_that_never_waits_finishes_within_a_zero_limit() -> None:
    async def at_once(scope: Any, receive: Any, send: Any) -> None:
        await answer(send)

    assert asyncio.run(call(guarded(at_once, timeout_s=0)))[0]["status"] == 200


def test_requests_answered_in_time_leave_no_deadline_behind() -> None:
    release = asyncio.Event()

    async def waits_for_release(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await answer(send)

    async def scenario() -> tuple[list[int], bool]:
        guard = guarded(waits_for_release, timeout_s=3600)
        quick = [asyncio.ensure_future(call(guard)) for _ in range(5)]
        await asyncio.sleep(0)
        release.set()
        statuses = [(await q)[0]["status"] for q in quick]
        return statuses, not guard.deadlines._open

    statuses, all_finished = asyncio.run(scenario())
    assert statuses == [200] * 5
    assert all_finished


def test_another_cancellation_is_not_taken_for_a_timeout() -> None:
    async def scenario() -> None:
        task = asyncio.ensure_future(call(guarded(never_answers)))
        await asyncio.sleep(0)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())


def test_unexpected_errors_become_a_500_in_the_route_familys_shape() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("secret detail")

    v1 = asyncio.run(call(guarded(broken)))
    v2 = asyncio.run(call(guarded(broken), "/v2/models/m/infer"))
    assert v1[0]["status"] == v2[0]["status"] == 500
    assert orjson.loads(v1[1]["body"])["title"] == "Internal Server Error"
    assert set(orjson.loads(v2[1]["body"])) == {"error"}
    assert b"secret" not in v1[1]["body"] + v2[1]["body"]


def counted_statuses(metrics: ServiceMetrics) -> dict[str, float]:
    return {
        s.labels["status"]: s.value
        for family in metrics.registry.collect()
        if family.name == "poolserve_http_requests"
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_metrics_count_the_guards_own_answers_and_the_apps() -> None:
    metrics = ServiceMetrics()

    async def at_once(scope: Any, receive: Any, send: Any) -> None:
        await answer(send)

    asyncio.run(call(guarded(never_answers, timeout_s=0, metrics=metrics)))
    asyncio.run(call(guarded(at_once, metrics=metrics)))
    assert counted_statuses(metrics) == {"504": 1.0, "200": 1.0}


def test_the_app_decodes_under_the_guards_slots() -> None:
    seen: list[DecodeSlots | None] = []
    slots = DecodeSlots(3)

    async def looks(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_decode_slots.get())
        await answer(send)

    asyncio.run(call(RequestGuard(looks, ServiceMetrics(), 1024, 30.0, slots)))
    assert seen == [slots]
    assert current_decode_slots.get() is None


class RecordList(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_response_cut_short_by_the_deadline_is_dropped_quietly_and_counted_504() -> None:
    """Past the limit mid-response (here a stream that stalls; served, a client that reads too slowly) it
    is too late for a status: the server has to drop the connection. That is an expected outcome: the
    guard logs one warning and counts a 504; the server logs no traceback at ERROR for it."""
    metrics = ServiceMetrics()

    async def stalls_mid_stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.Event().wait()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(guarded(stalls_mid_stream, timeout_s=0.5, metrics=metrics), log_level="info")
    quiet_expected_drops()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    records: list[logging.LogRecord] = []
    handler = RecordList(records)
    server_log = logging.getLogger("uvicorn.error")  # it does not propagate to pytest's capture
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        server_log.addHandler(handler)
        with pytest.raises(httpx.RemoteProtocolError):  # the body ends before its chunked end
            httpx.get(f"http://127.0.0.1:{sock.getsockname()[1]}/v1/models/m/classify", timeout=30)
    finally:
        server_log.removeHandler(handler)
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]
    assert counted_statuses(metrics) == {"504": 1.0}
