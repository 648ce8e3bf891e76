"""A request's cost is bounded before it is paid, against a real server with the default limits."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, DigitFile, running_server


def big_png(digit: DigitFile, side: int) -> bytes:
    """A held-out digit scaled up to ``side`` x ``side``: few bytes on the wire, many pixels to decode."""
    buffer = io.BytesIO()
    Image.open(digit.path).resize((side, side), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    settings = Settings(repository=REPOSITORY, max_concurrent_decodes=1, max_queued_decodes=0)
    with running_server(settings) as base:
        yield base


def test_sixty_four_4096_pngs_are_refused_from_their_headers(url: str, digit_files: list[DigitFile]) -> None:
    """Each image is within max_image_pixels and the body within max_body_bytes; all together are not."""
    blob = big_png(digit_files[0], 4096)
    files = [("images", (f"{i}.png", blob, "image/png")) for i in range(64)]
    reply = httpx.post(f"{url}/v1/models/lenet5-mnist/classify", files=files, timeout=60)
    assert reply.status_code == 413, reply.text
    assert "total 1073741824 pixels; the limit per request is 33554432" in reply.json()["detail"]


def _classify_at_once(url: str, bodies: list[bytes]) -> list[httpx.Response]:
    def classify(body: bytes) -> httpx.Response:
        return httpx.post(
            f"{url}/v1/models/lenet5-mnist/classify",
            content=body,
            headers={"Content-Type": "image/png"},
            timeout=60,
        )

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(classify, bodies))


def test_decoding_past_the_concurrency_bound_answers_503_and_the_rest_are_right(
    url: str, digit_files: list[DigitFile]
) -> None:
    """No decode may wait here (``max_queued_decodes=0``): past the one slot, a request is refused."""
    digits = digit_files[:8]
    bodies = [big_png(d, 4000) for d in digits]  # ~0.2 s of decoding each: the requests overlap
    replies = _classify_at_once(url, bodies)
    statuses = [r.status_code for r in replies]
    assert set(statuses) == {200, 503}, statuses
    for digit, reply in zip(digits, replies, strict=True):
        if reply.status_code == 503:
            assert reply.headers["Retry-After"] == "1"
            assert "decoding 1 requests' images already" in reply.json()["detail"]
        else:
            assert reply.json()["results"][0]["predictions"][0]["label"] == digit.label


def test_with_the_default_decode_queue_overlapping_requests_wait_for_a_slot_and_all_answer(
    digit_files: list[DigitFile],
) -> None:
    """One decode slot, the default queue: eight overlapping large PNGs decode one after another."""
    digits = digit_files[:8]
    bodies = [big_png(d, 4000) for d in digits]
    with running_server(Settings(repository=REPOSITORY, max_concurrent_decodes=1)) as base:
        replies = _classify_at_once(base, bodies)
    assert [r.status_code for r in replies] == [200] * 8, [r.text for r in replies]
    for digit, reply in zip(digits, replies, strict=True):
        assert reply.json()["results"][0]["predictions"][0]["label"] == digit.label


def test_a_large_jpeg_is_classified_as_its_png(url: str, digit_files: list[DigitFile]) -> None:
    """Decoded at 1/8 scale (4096 -> 512 before the resize to 28): the same digit comes out."""
    for digit in digit_files[:5]:
        image = Image.open(digit.path).resize((4096, 4096), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        reply = httpx.post(
            f"{url}/v1/models/lenet5-mnist/classify",
            content=buffer.getvalue(),
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert reply.json()["results"][0]["predictions"][0]["label"] == digit.label
