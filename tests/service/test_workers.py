"""``poolserve serve --workers 2`` as real processes: both serve, each is replaced alone, SIGTERM drains all.

Which server process takes a new connection is the kernel's choice. To talk to one worker in particular
the others are stopped (SIGSTOP) while the connection is opened: a stopped process cannot accept, so the
running one does; the connection then stays with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from poolserve.service.cores import available_cores
from tests.service.conftest import REPOSITORY, DigitFile
from tests.service.supervised import accepts, server_processes, supervised_server

MODEL = "lenet5-mnist"


@contextmanager
def only(worker: int, workers: list[int]) -> Iterator[None]:
    """New connections, meanwhile, go to ``worker``: every other server process is stopped."""
    others = [pid for pid in workers if pid != worker]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def label_from(client: httpx.Client, digit: DigitFile) -> str:
    reply = client.post(
        f"/v1/models/{MODEL}/classify",
        content=digit.path.read_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["results"][0]["predictions"][0]["label"])


def wait_until_serving(url: str, worker: int, workers: list[int], digit: DigitFile) -> None:
    """Poll ``worker`` alone (a fresh connection each time) until it classifies ``digit`` correctly."""
    deadline = time.monotonic() + 60
    while True:
        with only(worker, workers), httpx.Client(base_url=url, timeout=30) as client:
            reply = client.post(
                f"/v1/models/{MODEL}/classify",
                content=digit.path.read_bytes(),
                headers={"Content-Type": "image/png"},
            )
        if reply.status_code == 200:
            assert reply.json()["results"][0]["predictions"][0]["label"] == digit.label
            return
        assert reply.status_code == 503, reply.text  # its models are still loading
        assert time.monotonic() < deadline, f"server {worker} never served"
        time.sleep(0.2)


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_two_workers_each_serve_with_half_the_cores(digit_files: list[DigitFile]) -> None:
    with supervised_server(REPOSITORY, "--workers", "2") as (supervisor, url):
        workers = server_processes(supervisor.pid)
        assert len(workers) == 2
        for pid in workers:
            threads = environment_of(pid)["POOLSERVE_INTRA_OP_THREADS"]
            assert threads == str(max(1, available_cores() // 2))
            for digit in digit_files[:3]:
                wait_until_serving(url, pid, workers, digit)


def test_a_named_thread_count_is_left_alone() -> None:
    with supervised_server(REPOSITORY, workers="2", intra_op_threads="3") as (supervisor, _):
        workers = server_processes(supervisor.pid)
        assert len(workers) == 2
        assert {environment_of(pid)["POOLSERVE_INTRA_OP_THREADS"] for pid in workers} == {"3"}


def test_a_killed_worker_is_replaced_while_the_other_keeps_serving(digit_files: list[DigitFile]) -> None:
    digit = digit_files[0]
    # kept-alive connections must outlive the restart: the one to the survivor is reused throughout
    with supervised_server(REPOSITORY, workers="2", keep_alive_timeout_s="120") as (supervisor, url):
        first, second = workers = server_processes(supervisor.pid)
        for pid in workers:
            wait_until_serving(url, pid, workers, digit)
        with httpx.Client(base_url=url, timeout=30) as to_second:
            with only(second, workers):
                assert label_from(to_second, digit) == digit.label  # this connection is the second's
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while not set(server_processes(supervisor.pid)) - {first, second}:  # not replaced yet
                assert label_from(to_second, digit) == digit.label
                assert time.monotonic() < deadline, "the killed server was not replaced"
                time.sleep(0.05)
            now = server_processes(supervisor.pid)
            (replacement,) = set(now) - {first, second}
            assert sorted(now) == sorted([second, replacement])  # the survivor was left alone
            with only(second, now):  # the new one is loading its models; the survivor answers
                assert label_from(to_second, digit) == digit.label
        # A fresh connection only the replacement can take (the survivor is stopped) waits until its
        # models are in: a replacement accepts nothing it would answer "still loading".
        with only(replacement, now), httpx.Client(base_url=url, timeout=60) as to_replacement:
            assert label_from(to_replacement, digit) == digit.label
        assert server_processes(supervisor.pid) == now
        assert supervisor.poll() is None


def held_request(port: int, digit: DigitFile) -> socket.socket:
    """A classify request whose body is not sent yet, in flight: the app has asked for its body."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (
        f"POST /v1/models/{MODEL}/classify HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\n"
        f"Content-Length: {digit.path.stat().st_size}\r\nExpect: 100-continue\r\n\r\n"
    )
    connection.sendall(head.encode())
    assert connection.recv(1024).startswith(b"HTTP/1.1 100")
    return connection


def test_sigterm_drains_every_worker_within_the_grace_period(digit_files: list[DigitFile]) -> None:
    digit = digit_files[0]
    grace_s = 5
    with supervised_server(REPOSITORY, workers="2", shutdown_grace_s=str(grace_s)) as (supervisor, url):
        workers = server_processes(supervisor.pid)
        port = int(url.rsplit(":", 1)[1])
        held = {}
        for pid in workers:
            wait_until_serving(url, pid, workers, digit)
            with only(pid, workers):
                held[pid] = held_request(port, digit)
        finishing, abandoned = (held[pid] for pid in workers)

        sent = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        deadline = sent + 30
        while accepts(port):
            assert time.monotonic() < deadline, "still accepting after SIGTERM"
            time.sleep(0.05)
        assert supervisor.poll() is None  # waiting for the requests in flight

        finishing.sendall(digit.path.read_bytes())  # one finishes within the grace period...
        reply = read_all(finishing)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert f'"label":"{digit.label}"'.encode() in reply.replace(b" ", b"")
        # ...the other never sends its body: its server gives up on it when the grace period ends
        code = supervisor.wait(timeout=grace_s + 20)
        took = time.monotonic() - sent
        abandoned.close()
        assert code == 0
        assert grace_s - 1 < took < grace_s + 20  # it waited for the slow request, then stopped
        assert server_processes(supervisor.pid) == []
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_the_port_stops_listening_at_sigterm_even_before_the_workers_react() -> None:
    """Servers that have not yet handled their SIGTERM (stopped, here) still hold the shared socket: were
    it left listening, the kernel would queue new connections that nobody accepts, and reset them when the
    last server exits. The supervisor stops it listening for all of them at once."""
    with supervised_server(REPOSITORY, workers="2") as (supervisor, url):
        workers = server_processes(supervisor.pid)
        port = int(url.rsplit(":", 1)[1])
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            supervisor.send_signal(signal.SIGTERM)
            time.sleep(1)  # the supervisor drains; its servers cannot, yet
            assert not accepts(port)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        assert supervisor.wait(timeout=30) == 0


def read_all(connection: socket.socket) -> bytes:
    reply = b""
    while chunk := connection.recv(65536):
        reply += chunk
        if b"\r\n\r\n" in reply and reply.endswith(b"}"):
            break
    connection.close()
    return reply


def test_several_workers_need_the_supervisor() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "poolserve", "serve", "--workers", "2", "--no-supervise"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "supervisor" in done.stderr
