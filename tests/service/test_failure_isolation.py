"""Failures stay with their request, against a real uvicorn and a model whose inference really raises.

- an inference error is a 500 in the route family's shape (problem+json on /v1, ``{"error"}`` on /v2),
  with a generic detail, the traceback in the log, and the keep-alive connection still open after it;
- a batch holding one such request answers every other request in it correctly.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from poolserve.service.api.error_table import UNEXPECTED_DETAIL
from poolserve.service.runtime.batch_handlers import ClassificationHandler, ClassificationResult
from poolserve.service.settings import Settings
from tests.service import poisoned_model
from tests.service.conftest import DigitFile, running_server

V1 = f"/v1/models/{poisoned_model.NAME}/classify?top_k=10"
V2 = f"/v2/models/{poisoned_model.NAME}/infer"
PNG = {"content-type": "image/png"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = poisoned_model.write_repository(tmp_path_factory.mktemp("repository"))
    with running_server(Settings(repository=root, max_queue_delay_ms=0)) as base:
        yield base


def v2_body(first_pixel: float) -> bytes:
    pixels = np.zeros(28 * 28, np.float32)
    pixels[0] = first_pixel
    tensor = {"name": "images", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": pixels.tolist()}
    return orjson.dumps({"inputs": [tensor]})


def exchange(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    connection.request("POST", path, body=body, headers=headers)
    reply = connection.getresponse()
    return reply.status, reply.getheader("content-type", ""), reply.read()


@pytest.mark.parametrize(
    ("path", "bad", "good", "headers", "media_type"),
    [
        (V1, poisoned_model.poison_png(), None, PNG, "application/problem+json"),
        (V2, v2_body(255.0), v2_body(0.0), {"content-type": "application/json"}, "application/json"),
    ],
    ids=["v1", "v2"],
)
def test_an_inference_error_is_a_500_in_the_family_shape_and_the_connection_survives(
    url: str,
    path: str,
    bad: bytes,
    good: bytes | None,
    headers: dict[str, str],
    media_type: str,
    digit_files: list[DigitFile],
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = good or digit_files[0].path.read_bytes()
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        with caplog.at_level(logging.ERROR, logger="poolserve"):
            status, content_type, body = exchange(connection, path, bad, headers)
        assert connection.sock is not None
        local = connection.sock.getsockname()
        assert status == 500 and content_type == media_type
        answer = orjson.loads(body)
        if path.startswith("/v2"):
            assert answer == {"error": UNEXPECTED_DETAIL}
        else:
            assert answer["status"] == 500 and answer["detail"] == UNEXPECTED_DETAIL
            assert answer["instance"] == path.split("?")[0]
        for secret in (b"Gather", b"onnxruntime", b"Traceback", b"indices"):
            assert secret not in body
        assert any(r.exc_info for r in caplog.records), "the traceback was not logged"
        # The next request on the same connection: answered, on the same socket (no reset, no reconnect).
        status, _, _ = exchange(connection, path, good, headers)
        assert status == 200
        assert connection.sock is not None and connection.sock.getsockname() == local
    finally:
        connection.close()


def test_one_bad_request_in_a_batch_fails_alone(
    tmp_path: Path, digit_files: list[DigitFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    armed, entered, release = threading.Event(), threading.Event(), threading.Event()
    original = ClassificationHandler.run
    batches: list[int] = []

    def run(self: ClassificationHandler, items: Sequence[np.ndarray]) -> list[ClassificationResult]:
        if armed.is_set() and not entered.is_set():  # hold one batch: the next requests queue behind it
            entered.set()
            release.wait(60)
        batches.append(len(items))
        return original(self, items)

    monkeypatch.setattr(ClassificationHandler, "run", run)
    root = poisoned_model.write_repository(tmp_path)
    goods = [f.path.read_bytes() for f in digit_files[:6]]
    mixed = [*goods[1:3], poisoned_model.poison_png(), *goods[3:]]
    with (
        running_server(Settings(repository=root, max_queue_delay_ms=0)) as base,
        ThreadPoolExecutor(8) as pool,
    ):

        def post(blob: bytes) -> httpx.Response:
            return httpx.post(f"{base}{V1}", content=blob, headers=PNG, timeout=60)

        alone = [post(g).json() for g in goods]  # the reference: each good request by itself
        armed.set()
        first = pool.submit(post, goods[0])
        assert entered.wait(30)
        batches.clear()
        futures = [pool.submit(post, blob) for blob in mixed]
        depth = f'poolserve_queue_depth{{model="{poisoned_model.NAME}"}} {len(mixed)}.0'
        deadline = time.monotonic() + 30
        while depth not in httpx.get(f"{base}/metrics").text:
            assert time.monotonic() < deadline, "the requests never queued behind the held batch"
            time.sleep(0.01)
        release.set()
        answers = [f.result() for f in futures]
        assert first.result().json() == alone[0]
    assert batches[:2] == [1, len(mixed)]  # the held one, then all the others in one batch, which failed
    bad = answers.pop(2)
    assert bad.status_code == 500 and bad.json()["detail"] == UNEXPECTED_DETAIL
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert [a.json() for a in answers] == alone[1:]
