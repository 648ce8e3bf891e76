"""The public client against a real server: listing, classify, features, typed errors, the API key,
(on a scripted transport, since a real 503 cannot be had on demand) retries that honour Retry-After, and
no answer at all (nothing listening, a server that never replies) raised as ``ConnectionFailed``."""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import time
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest

from poolserve.client import (
    AsyncPoolserveClient,
    BadInput,
    ConnectionFailed,
    ModelNotFound,
    PoolserveClient,
    PoolserveError,
    ServerError,
    Unauthorized,
    Unavailable,
)
from poolserve.repository.manifest import Manifest
from poolserve.service.app import create_app
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, CanvasFile, DigitFile, running_server

REGION_MODEL = "digits-roialign"
CLASSIFIER = "lenet5-mnist"


@pytest.fixture(scope="module")
def client(server_url: str) -> Iterator[PoolserveClient]:
    with PoolserveClient(server_url) as c:
        yield c


def test_models_list_the_repository(client: PoolserveClient, manifests: dict[str, Manifest]) -> None:
    listed = {m.name: m for m in client.models()}
    assert set(listed) == set(manifests)
    region = client.model(REGION_MODEL)
    assert region.sha256 == manifests[REGION_MODEL].sha256
    assert region.feature_dim == manifests[REGION_MODEL].feature_dim
    assert region.status == "ready"


def test_classify_returns_ranked_predictions(client: PoolserveClient, digit_files: list[DigitFile]) -> None:
    picked = digit_files[::25]
    result = client.classify(CLASSIFIER, [d.path for d in picked], top_k=3)
    assert (result.model, len(result.predictions)) == (CLASSIFIER, len(picked))
    assert [p[0].label for p in result.predictions] == [d.label for d in picked]
    assert all(len(p) == 3 and p[0].score >= p[1].score >= p[2].score for p in result.predictions)


def test_features_are_numpy(client: PoolserveClient, canvas_files: list[CanvasFile], server_url: str) -> None:
    canvases = canvas_files[:2]
    result = client.features(REGION_MODEL, [c.path for c in canvases], [c.boxes for c in canvases])
    for canvas, image in zip(canvases, result.images, strict=True):
        assert image.features.dtype == np.float32
        assert image.features.shape == (len(canvas.boxes), result.feature_dim)
        np.testing.assert_array_equal(image.boxes, canvas.boxes)
        assert image.predictions is not None
        assert [p[0].label for p in image.predictions] == canvas.labels
    half = client.features(REGION_MODEL, [canvases[0].path], [canvases[0].boxes], encoding="float16")
    assert half.images[0].features.dtype == np.float16
    np.testing.assert_array_equal(half.images[0].features, result.images[0].features.astype(np.float16))

    async def concurrently() -> list[np.ndarray]:
        async with AsyncPoolserveClient(server_url) as aclient:
            answers = await asyncio.gather(
                *(aclient.features(REGION_MODEL, [c.path], [c.boxes]) for c in canvases)
            )
        return [a.images[0].features for a in answers]

    for mine, theirs in zip(asyncio.run(concurrently()), result.images, strict=True):
        np.testing.assert_allclose(mine, theirs.features, atol=1e-6)


def test_refusals_are_typed(client: PoolserveClient, canvas_files: list[CanvasFile]) -> None:
    with pytest.raises(ModelNotFound) as missing:
        client.model("no-such-model")
    assert missing.value.status == 404
    with pytest.raises(BadInput) as corrupt:
        client.classify(CLASSIFIER, [b"\x89PNG\r\n\x1a\n not an image"])
    assert corrupt.value.type == "/problems/invalid-image"
    assert "not a readable image" in corrupt.value.detail
    with pytest.raises(BadInput) as outside:
        client.features(REGION_MODEL, [canvas_files[0].path], [[[500, 500, 600, 600]]])
    assert outside.value.status == 422


def test_the_api_key_is_sent(digit_files: list[DigitFile]) -> None:
    with running_server(Settings(repository=REPOSITORY, api_key="s3cret")) as url:
        with PoolserveClient(url) as anonymous, pytest.raises(Unauthorized):
            anonymous.models()
        with PoolserveClient(url, api_key="s3cret") as keyed:
            assert keyed.classify(CLASSIFIER, [digit_files[0].path]).predictions[0][0].label == "0"


def test_top_k_left_out_is_the_servers_default(digit_files: list[DigitFile]) -> None:
    """A server whose max_top_k is below the usual 5 still answers a client that did not ask for more."""
    with running_server(Settings(repository=REPOSITORY, max_top_k=3)) as url, PoolserveClient(url) as c:
        assert [len(p) for p in c.classify(CLASSIFIER, [digit_files[0].path]).predictions] == [3]
        with pytest.raises(BadInput, match="top_k is 4; at most 3"):
            c.classify(CLASSIFIER, [digit_files[0].path], top_k=4)


def test_in_process_through_the_async_client_and_asgi_transport(digit_files: list[DigitFile]) -> None:
    app = create_app(Settings(repository=REPOSITORY))

    async def scenario() -> tuple[str, int]:
        transport = httpx.ASGITransport(app)
        async with AsyncPoolserveClient("http://in-process", transport=transport, retries=0) as c:
            with pytest.raises(Unavailable, match="lifespan"):  # no models without the lifespan
                await c.classify(CLASSIFIER, [digit_files[0].path])
            async with app.router.lifespan_context(app):
                await c.models()
                for _ in range(600):  # the models load in the background
                    if (await c.model(CLASSIFIER)).status == "ready":
                        break
                    await asyncio.sleep(0.05)
                result = await c.classify(CLASSIFIER, [digit_files[0].path])
        return result.predictions[0][0].label, len(result.predictions[0])

    assert asyncio.run(scenario()) == (digit_files[0].label, 5)
    with pytest.raises(TypeError, match="use AsyncPoolserveClient"):
        PoolserveClient("http://in-process", transport=httpx.ASGITransport(app))  # type: ignore[arg-type]


def _busy_then_ok(busy: int) -> tuple[httpx.MockTransport, list[float]]:
    """A server whose first ``busy`` answers are 503 with ``Retry-After: 0.2``; records when each came."""
    seen: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) <= busy:
            problem = {"type": "/problems/queue-full", "title": "Service Unavailable", "status": 503,
                       "detail": "queue full"}  # fmt: skip
            return httpx.Response(503, json=problem, headers={"Retry-After": "0.2"})
        return httpx.Response(200, json={"models": []})

    return httpx.MockTransport(answer), seen


def test_503_is_retried_as_retry_after_says() -> None:
    transport, seen = _busy_then_ok(busy=2)
    with PoolserveClient("http://poolserve", transport=transport, retries=2) as patient:
        assert patient.models() == []
    assert len(seen) == 3
    assert min(b - a for a, b in itertools.pairwise(seen)) >= 0.2  # waited as told, each time
    transport, seen = _busy_then_ok(busy=5)
    impatient = PoolserveClient("http://poolserve", transport=transport, retries=1)
    with impatient, pytest.raises(Unavailable) as busy:
        impatient.models()
    assert (busy.value.retry_after_s, busy.value.detail, len(seen)) == (0.2, "queue full", 2)


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A loopback port bound but not listening: connecting is refused, and no one else can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A listening port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _assert_refused(error: ConnectionFailed) -> None:
    assert isinstance(error, PoolserveError)
    assert (error.status, str(error), error.retryable) == (0, "connection refused", True)


def test_sync_refused_after_its_retries(closed_port: str) -> None:
    started = time.monotonic()
    with (
        PoolserveClient(closed_port, retries=2, max_wait_s=0.05) as client,
        pytest.raises(ConnectionFailed) as failed,
    ):
        client.models()
    _assert_refused(failed.value)
    assert time.monotonic() - started >= 0.1  # two waits of max_wait_s: the retry policy still runs


def test_async_refused_after_its_retries(closed_port: str) -> None:
    async def call() -> None:
        async with AsyncPoolserveClient(closed_port, retries=2, max_wait_s=0.05) as client:
            await client.classify("lenet5-mnist", [b"\x89PNG"])

    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as failed:
        asyncio.run(call())
    _assert_refused(failed.value)
    assert time.monotonic() - started >= 0.1


def test_a_timeout_is_not_retried(silent_server: str) -> None:
    with (
        PoolserveClient(silent_server, timeout_s=0.2, retries=3) as client,
        pytest.raises(ConnectionFailed) as failed,
    ):
        client.model("lenet5-mnist")
    assert (str(failed.value), failed.value.retryable) == ("timed out waiting for the answer", False)


def test_the_client_refuses_what_the_server_would_before_sending(
    client: PoolserveClient, canvas_files: list[CanvasFile]
) -> None:
    canvas = canvas_files[0].path
    for call, says in [
        (lambda: client.classify(CLASSIFIER, []), "no images: pass at least one"),
        (
            lambda: client.features(REGION_MODEL, [canvas], [[[float("nan"), 2, 3, 4]]]),
            "boxes[0] holds NaN or infinity",
        ),
        (
            lambda: client.features(REGION_MODEL, [canvas], [[[1, 2, 3]]]),
            "boxes[0] must be a list of [x1, y1, x2, y2]",
        ),
        (
            lambda: client.features(REGION_MODEL, [canvas], [[], []]),
            "boxes needs one list per image: 2 lists for 1",
        ),
        (lambda: client.features(REGION_MODEL, [canvas], [[]], encoding="int8"), "encoding 'int8'"),  # type: ignore[arg-type]
        (lambda: client.classify(CLASSIFIER, str(canvas)), "pass [image], not one image"),
        (lambda: client.classify(CLASSIFIER, canvas.read_bytes()), "pass [image], not one image"),  # type: ignore[arg-type]
        (
            lambda: client.classify(CLASSIFIER, [np.zeros((28, 28), np.uint8)]),  # type: ignore[list-item]
            "images[0] is a ndarray: pass an encoded image's bytes or a file path",
        ),
    ]:
        with pytest.raises(BadInput) as refused:
            call()
        assert refused.value.status == 0 and says in refused.value.detail, refused.value
        assert hash(refused.value)  # usable in sets and as keys, as exceptions are


def _answering(status: int, body: bytes, content_type: str = "application/json") -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(status, content=body, headers={"content-type": content_type})
    )


def test_answers_the_client_cannot_read_are_its_own_errors() -> None:
    not_found = b'{"type": "/problems/not-found", "title": "Not Found", "status": 404, "detail": "Not Found"}'
    for transport, says in [
        (_answering(200, b"<html>hi</html>", "text/html"), r"the answer is not JSON \(text/html\)"),
        (_answering(200, b'{"items": []}'), "lacks what this client reads"),
        (_answering(404, not_found), "is the base URL poolserve's"),
    ]:
        with (
            PoolserveClient("http://elsewhere", transport=transport) as odd,
            pytest.raises(ServerError, match=says),
        ):
            odd.models()


def test_an_answer_for_other_images_or_boxes_than_were_sent_is_refused(
    client: PoolserveClient, digit_files: list[DigitFile], canvas_files: list[CanvasFile]
) -> None:
    """A proxy or another server that drops a result must not shift the rest onto the wrong images."""
    digits = [d.path for d in digit_files[:2]]
    honest = client.classify(CLASSIFIER, digits)
    shaped = {"model": CLASSIFIER, "version": 1, "results": [{"predictions": []}]}
    with (
        PoolserveClient("http://short", transport=_answering(200, orjson.dumps(shaped))) as short,
        pytest.raises(ServerError, match="does not match the request: 1 results for the 2 images sent"),
    ):
        short.classify(CLASSIFIER, digits)
    assert len(honest.predictions) == 2
    sent = [[[0, 0, 5, 5], [1, 1, 6, 6]]]
    full = {"model": REGION_MODEL, "version": 1, "feature_dim": 2, "encoding": "float32",
            "results": [{"boxes": [{"box": [0, 0, 1, 1], "features": [0.0, 0.0]}]}]}  # fmt: skip
    with (
        PoolserveClient("http://short", transport=_answering(200, orjson.dumps(full))) as short,
        pytest.raises(ServerError, match="1 boxes in result 0 for the 2 sent"),
    ):
        short.features(REGION_MODEL, [canvas_files[0].path], sent)


def test_names_urls_keys_and_timeouts_are_checked_where_they_are_given(client: PoolserveClient) -> None:
    with pytest.raises(ModelNotFound):  # one path segment, not a query string or a way up
        client.classify("lenet5-mnist?top_k=1", [b"x"])
    with pytest.raises(BadInput, match=re.escape("no model can be named '../health'")):
        client.classify("../health", [b"x"])
    for kwargs, says in [
        ({"base_url": "localhost:8000"}, "must be http://host:port"),
        ({"base_url": "http://[::1"}, "is not a URL"),
        ({"base_url": "http://h", "timeout_s": 0}, "timeout_s must be a positive number"),
        ({"base_url": "http://h", "api_key": "k\nX-Injected: 1"}, "api_key must be printable ASCII"),
        ({"base_url": "http://h", "api_key": "clé"}, "api_key must be printable ASCII"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            PoolserveClient(**kwargs)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=re.escape(says)):
            AsyncPoolserveClient(**kwargs)  # type: ignore[arg-type]


def test_a_reset_connection_is_retried() -> None:
    calls = 0

    def reset_once(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        return httpx.Response(200, json={"models": []})

    with PoolserveClient(
        "http://poolserve", transport=httpx.MockTransport(reset_once), retries=2, max_wait_s=0.01
    ) as c:
        assert c.models() == []
    assert calls == 2
