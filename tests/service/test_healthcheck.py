"""The container probe against a real HTTP server on 127.0.0.1 (stdlib, so the probe's only contract,
status 200 on /health/ready, is all that is exercised)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from poolserve.service import healthcheck
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, running_server


class _Health(BaseHTTPRequestHandler):
    ready_status = 200

    def do_GET(self) -> None:
        status = self.ready_status if self.path == healthcheck.READY_PATH else 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def health_server(request: pytest.FixtureRequest) -> Iterator[int]:
    handler = type("Handler", (_Health,), {"ready_status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8000/health/ready"),
        ({"POOLSERVE_HOST": "0.0.0.0", "POOLSERVE_PORT": "9001"}, "http://127.0.0.1:9001/health/ready"),
        ({"POOLSERVE_HOST": "::"}, "http://127.0.0.1:8000/health/ready"),
        ({"POOLSERVE_HOST": "10.1.2.3"}, "http://10.1.2.3:8000/health/ready"),
        ({"POOLSERVE_HOST": "::1", "POOLSERVE_PORT": "81"}, "http://[::1]:81/health/ready"),
    ],
)
def test_ready_url_follows_the_service_settings(env: dict[str, str], url: str) -> None:
    assert healthcheck.ready_url(env) == url


@pytest.mark.parametrize(("health_server", "exit_code"), [(200, 0), (503, 1)], indirect=["health_server"])
def test_exit_code_follows_readiness(
    health_server: int, exit_code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POOLSERVE_HOST", "0.0.0.0")
    monkeypatch.setenv("POOLSERVE_PORT", str(health_server))
    assert healthcheck.main([]) == exit_code


def test_nothing_listening_is_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("POOLSERVE_HOST", "127.0.0.1")
    monkeypatch.setenv("POOLSERVE_PORT", str(port))
    assert healthcheck.main(["1"]) == 1


def test_the_probe_sends_the_key_when_health_routes_require_it(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(repository=REPOSITORY, api_key="s3cret", auth_exempt_health=False)
    with running_server(settings, wait_ready=False) as url:
        ready = f"{url}{healthcheck.READY_PATH}"
        while httpx.get(ready, headers={"X-API-Key": "s3cret"}, timeout=5).status_code != 200:
            time.sleep(0.05)
        port = url.rsplit(":", 1)[1]
        monkeypatch.setenv("POOLSERVE_PORT", port)
        monkeypatch.setenv("POOLSERVE_AUTH_EXEMPT_HEALTH", "false")
        assert healthcheck.main(["5"]) == 1  # no key in its environment: refused like any client
        monkeypatch.setenv("POOLSERVE_API_KEY", "s3cret")
        assert healthcheck.main(["5"]) == 0
        monkeypatch.setenv("POOLSERVE_AUTH_EXEMPT_HEALTH", "true")  # exempt: the key is not sent
        assert healthcheck.probe_headers({"POOLSERVE_API_KEY": "s3cret"}) == {}
