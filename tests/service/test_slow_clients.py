"""Slow and idle clients on real sockets, against the server as ``poolserve serve`` configures uvicorn."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from poolserve.service.app import create_app
from poolserve.service.serve import DrainingServer, server_config
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, CanvasFile, DigitFile

HEADER_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 100
HALF_HEAD = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: "  # never finished


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    settings = Settings(
        repository=REPOSITORY,
        log_level="warning",
        header_timeout_s=HEADER_TIMEOUT_S,
        max_connections=MAX_CONNECTIONS,
        request_timeout_s=2,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(settings)
    server = DrainingServer(server_config(app, settings), app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 60
        while not server.started or httpx.get(f"{base}/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes the connection (recv sees EOF or a reset) before ``deadline``."""
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_sent_heads_are_closed_after_the_header_timeout_and_the_cap_holds(
    url: str, digit_files: list[DigitFile]
) -> None:
    slow = [connect(url) for _ in range(200)]
    try:
        for sock in slow[:150]:
            sock.sendall(HALF_HEAD)  # the other 50 send nothing at all
        # Over the connection cap a new client is answered 503 at once, not left waiting.
        deadline = time.monotonic() + 10
        while (status := httpx.get(f"{url}/health/live").status_code) != 503:
            assert time.monotonic() < deadline, f"never refused over the cap (last {status})"
        # Every slow connection is closed by the server once its head is overdue...
        closes_by = time.monotonic() + HEADER_TIMEOUT_S + 15  # slack for a loaded machine
        assert all(closed_by_server(sock, closes_by) for sock in slow)
    finally:
        for sock in slow:
            sock.close()
    # ...and a good client is served again, with the right answer.
    digit = digit_files[0]
    reply = httpx.post(
        f"{url}/v1/models/lenet5-mnist/classify",
        content=digit.path.read_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert reply.status_code == 200
    assert reply.json()["results"][0]["predictions"][0]["label"] == digit.label


def test_a_kept_alive_connection_that_starts_a_second_head_and_stalls_is_closed(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(HALF_HEAD)
        assert closed_by_server(sock, time.monotonic() + HEADER_TIMEOUT_S + 15)


def test_a_body_that_stops_arriving_is_answered_504_within_the_request_time_limit(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(
            b"POST /v1/models/lenet5-mnist/classify HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: image/png\r\nContent-Length: 1000\r\n\r\n\x89PNG"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 504"), reply[:100]


def read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (True) or ``deadline`` passes (False)."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received, True
        except TimeoutError:
            return received, False
        if not chunk:
            return received, True
        received += chunk
    return received, False


def test_a_head_past_64_kib_is_refused_431_and_one_below_is_served(url: str) -> None:
    start = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n"
    lines = [b"X-Pad-%d: %s\r\n" % (i, b"a" * 100) for i in range(700)]
    padding = b"".join(lines)  # 78 KB of headers
    with connect(url) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # closed once past the cap
            sock.sendall(start + padding)  # never finished: the cap, not the deadline, ends it
        reply, closed = read_until_closed(sock, time.monotonic() + HEADER_TIMEOUT_S / 2)
    assert reply.startswith(b"HTTP/1.1 431") and closed, reply[:100]
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["type"] == "/problems/head-too-large"
    with connect(url) as sock:
        sock.sendall(start + b"".join(lines[:350]) + b"\r\n")  # 39 KB, complete
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("path", ["/health/live", "/v2/health/live"])
def test_a_whole_head_past_64_kib_in_one_read_is_refused_431_too(url: str, path: str) -> None:
    head = b"GET %s HTTP/1.1\r\nHost: localhost\r\nX-Big: %s\r\n\r\n" % (path.encode(), b"a" * 70_000)
    with connect(url) as sock:
        sock.sendall(head)
        reply, closed = read_until_closed(sock, time.monotonic() + 10)
    status, _, body = reply.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431") and closed, reply[:200]
    detail = json.loads(body)["error"] if path.startswith("/v2") else json.loads(body)["detail"]
    assert "65536 bytes" in detail
    with connect(url) as sock:  # a long body behind a short head, in one read, is not a long head
        sock.sendall(
            b"POST /v1/models/lenet5-mnist/classify HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: image/png\r\nContent-Length: 70000\r\n\r\n" + b"\0" * 70_000
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")  # not a PNG; not 431


def test_max_connections_connections_are_all_served(url: str) -> None:
    idle = [connect(url) for _ in range(MAX_CONNECTIONS - 1)]
    try:
        # Served in the order they connected: once the last answers, the server holds every one.
        idle[-1].sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert idle[-1].recv(4096).startswith(b"HTTP/1.1 200")
        assert httpx.get(f"{url}/health/live").status_code == 200  # the limit's own connection
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_stops_reading_is_dropped_once_its_response_stalls(
    url: str, canvas_files: list[CanvasFile]
) -> None:
    """Its responses fill the server's write buffer: after the write deadline (the request time limit,
    2 s here) the connection is aborted, freeing its slot and the buffered responses, instead of being
    held for as long as the client keeps its socket open."""
    canvas = canvas_files[0].path.read_bytes()
    boundary = b"b0undary"
    boxes = b"[" + b",".join([b"[0, 0, 10, 10]"] * 1024) + b"]"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="images"; filename="c.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
        + canvas
        + b"\r\n--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="boxes"\r\n\r\n['
        + boxes
        + b"]\r\n--"
        + boundary
        + b"--\r\n"
    )
    head = (
        b"POST /v1/models/digits-roialign/features HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.connect((host, int(port)))
        sock.sendall((head + body) * 3)  # three ~1.5 MB answers, pipelined, none read
        time.sleep(2 + 6)  # the write deadline, with slack for a loaded machine
        received, closed = read_until_closed(sock, time.monotonic() + 10)
    assert closed, "the connection was held open"
    assert len(received) < 3 * 1_000_000, "every response was delivered: the connection was not dropped"


def test_over_the_connection_cap_the_refusal_is_the_services_own_503_with_retry_after(url: str) -> None:
    idle = [connect(url) for _ in range(MAX_CONNECTIONS)]
    try:
        deadline = time.monotonic() + 10
        while (reply := httpx.get(f"{url}/v1/models")).status_code != 503:
            assert time.monotonic() < deadline, f"never refused over the cap (last {reply.status_code})"
        v2 = httpx.get(f"{url}/v2/models/lenet5-mnist")
    finally:
        for sock in idle:
            sock.close()
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["retry-after"] == "1"
    assert reply.headers["connection"] == "close"
    problem = reply.json()
    assert problem["status"] == 503 and problem["instance"] == "/v1/models"
    assert "max_connections" in problem["detail"] and str(MAX_CONNECTIONS) in problem["detail"]
    assert v2.status_code == 503 and v2.headers["content-type"] == "application/json"
    assert "max_connections" in v2.json()["error"]
    # The slots come back once the idle connections close.
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/health/live").status_code != 200:
        assert time.monotonic() < deadline, "the cap never released"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT-A-METHOD / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"\x16\x03\x01\x02\x00",
    ],
    ids=["method", "header", "tls-hello"],
)
def test_a_request_that_is_not_http_is_answered_400_problem_json_and_closed(
    url: str, request_bytes: bytes
) -> None:
    with connect(url) as sock:
        sock.sendall(request_bytes)
        reply, closed = read_until_closed(sock, time.monotonic() + 10)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and closed, reply[:200]
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 400 and "not valid HTTP/1.1" in problem["detail"]
