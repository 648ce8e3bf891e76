"""Zero-configuration start on the shipped repository, the two documented ways, as real processes."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest

from tests.conftest import server_environment
from tests.service.conftest import ROOT, wait_until_ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "poolserve", "serve", "--port", "{port}"],
        [
            sys.executable,
            "-m",
            "uvicorn",
            "poolserve.service.app:create_app",
            "--factory",
            "--port",
            "{port}",
        ],
    ],
    ids=["poolserve-serve", "uvicorn-factory"],
)
def test_starts_with_zero_configuration(command: list[str]) -> None:
    port = free_port()
    env = server_environment()
    process = subprocess.Popen(
        [part.format(port=port) for part in command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(process, port, timeout_s=30)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["models"]
        assert {"lenet5-mnist", "digits-roialign"} <= {m["name"] for m in models}
    finally:
        process.terminate()
        process.wait(timeout=10)
