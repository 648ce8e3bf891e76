"""Service test fixtures: the shipped model repository served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from poolserve.repository.manifest import Manifest
from poolserve.repository.store import discover, latest_versions, read_manifest, verified_model_path
from poolserve.service.app import create_app
from poolserve.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = ROOT / "model_repository"
DATA = ROOT / "tests" / "data"
# The models the project ships and trains itself; tests/service/test_models.py checks all are present,
# the other tests run on those that are (so one missing export fails one test, not dozens).
SHIPPED_CLASSIFIERS = ["lenet5-mnist", "lenet5-gap-mnist"]
SHIPPED_REGION_MODELS = ["digits-roialign", "digits-roipool"]
CLASSIFIERS = [name for name in SHIPPED_CLASSIFIERS if (REPOSITORY / name).is_dir()]
REGION_MODELS = [name for name in SHIPPED_REGION_MODELS if (REPOSITORY / name).is_dir()]


@dataclass(frozen=True)
class DigitFile:
    path: Path
    label: str  # files are named <label>_<index>.png


@dataclass(frozen=True)
class CanvasFile:
    path: Path
    boxes: np.ndarray  # (K, 4) float32, x1 y1 x2 y2 in canvas pixels
    labels: list[str]


@pytest.fixture(scope="session")
def digit_files() -> list[DigitFile]:
    """The committed held-out digit PNGs (never trained on)."""
    return [DigitFile(p, p.stem.split("_")[0]) for p in sorted((DATA / "digits").glob("*.png"))]


@pytest.fixture(scope="session")
def canvas_files() -> list[CanvasFile]:
    """The committed canvases of held-out digits, with their true boxes (``canvases.json``)."""
    index = orjson.loads((DATA / "canvases" / "canvases.json").read_bytes())
    return [
        CanvasFile(
            DATA / "canvases" / c["file"], np.asarray(c["boxes"], np.float32).reshape(-1, 4), c["labels"]
        )
        for c in index["canvases"]
    ]


def wait_until_ready(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    """Poll a server started as a subprocess until /health/ready answers 200; fail if it exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, "the server exited during start-up"
        assert time.monotonic() < deadline, "the server never became ready"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def _quiet_config(app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,  # as `poolserve serve` runs it
    )


@contextmanager
def running_server(
    settings: Settings, wait_ready: bool = True, config_of: Callable[[FastAPI], uvicorn.Config] | None = None
) -> Iterator[str]:
    """A real uvicorn serving ``create_app(settings)`` on a free loopback port; yields the base URL.
    ``config_of``: the server's config for the app (default: quiet, lifespan on)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings)
    config = (config_of or _quiet_config)(app)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during startup"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        while wait_ready and httpx.get(f"{url}/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "models did not load"
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    with running_server(Settings(repository=REPOSITORY)) as url:
        yield url


@pytest.fixture(scope="session")
def client(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def manifests() -> dict[str, Manifest]:
    return {loc.name: read_manifest(loc) for loc in latest_versions(discover(REPOSITORY))}


@pytest.fixture(scope="session")
def reference_sessions(manifests: dict[str, Manifest]) -> dict[str, ort.InferenceSession]:
    """In-process sessions on the same files: what the service's answers must equal."""
    locations = {loc.name: loc for loc in latest_versions(discover(REPOSITORY))}
    return {
        name: ort.InferenceSession(
            str(verified_model_path(locations[name], m)), providers=["CPUExecutionProvider"]
        )
        for name, m in manifests.items()
    }


def softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)
