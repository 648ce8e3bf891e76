"""``POOLSERVE_ACCESS_LOG``: uvicorn's line per request under ``poolserve serve``'s server config, or none."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from poolserve.service.app import create_app
from poolserve.service.serve import DrainingServer, server_config
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY

LINE = '"GET /health/live HTTP/1.1" 200'


def logged_request(settings: Settings) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(settings)
    server = DrainingServer(server_config(app, settings), app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{sock.getsockname()[1]}/health/live").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.parametrize("access_log", [True, False])
def test_the_access_log_follows_the_setting(capfd: pytest.CaptureFixture[str], access_log: bool) -> None:
    logged_request(Settings(repository=REPOSITORY, log_level="info", access_log=access_log))
    out, err = capfd.readouterr()
    assert (LINE in out + err) is access_log


def test_the_access_log_is_on_by_default() -> None:
    assert Settings(repository=REPOSITORY).access_log
