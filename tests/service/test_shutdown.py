"""SIGTERM on a real ``poolserve serve`` process: stop accepting, finish the request in flight, exit 0."""

from __future__ import annotations

import json
import signal
import socket
import time

from tests.service.conftest import REPOSITORY, DigitFile
from tests.service.supervised import accepts, supervised_server


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(digit_files: list[DigitFile]) -> None:
    with supervised_server(REPOSITORY, shutdown_grace_s="30") as (server, url):
        port = int(url.rsplit(":", 1)[1])
        digit = digit_files[0]
        body = digit.path.read_bytes()
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = (
            "POST /v1/models/lenet5-mnist/classify HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: image/png\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        )
        slow.sendall(head.encode())
        # uvicorn sends "100 Continue" once the app asks for the body: the request is in flight.
        assert slow.recv(1024).startswith(b"HTTP/1.1 100")

        server.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while accepts(port):  # stops accepting new connections...
            assert time.monotonic() < deadline, "still accepting after SIGTERM"
            time.sleep(0.05)
        assert server.poll() is None  # ...but waits for the request in flight

        slow.sendall(body)
        reply = b""
        while chunk := slow.recv(65536):
            reply += chunk
        slow.close()
        head_part, _, payload = reply.partition(b"\r\n\r\n")
        assert head_part.startswith(b"HTTP/1.1 200"), reply[:200]
        assert b"\r\nserver:" not in head_part.lower()  # no Server header
        assert json.loads(payload)["results"][0]["predictions"][0]["label"] == digit.label

        assert server.wait(timeout=30) == 0
