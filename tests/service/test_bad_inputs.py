"""The bad-input corpus against a real uvicorn: every case a documented problem, and the server unharmed.

Images are real files made with Pillow here (CMYK JPEG, 16-bit PNG, palette, LA, animated PNG/WebP/GIF,
truncated and corrupt bytes, a PNG header declaring 50,000 x 50,000 pixels). After the whole corpus, a known
digit must still classify exactly as before it.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import re
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, DigitFile, running_server

CLASSIFY = "/v1/models/lenet5-mnist/classify"
FEATURES = "/v1/models/digits-roialign/features"
PNG = {"content-type": "image/png"}
LIMITS = Settings(
    repository=REPOSITORY,
    max_body_bytes=1 << 20,
    max_images_per_request=4,
    max_boxes_per_request=8,
    max_top_k=10,
)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header claiming width x height 8-bit gray pixels, with a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 1024))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def corrupt(data: bytes) -> bytes:
    """The same length, with the compressed pixel data overwritten from its middle on."""
    middle = len(data) // 2
    return data[:middle] + b"\xa5" * (len(data) - middle - 12) + data[-12:]


@dataclass(frozen=True)
class Digit:
    image: Image.Image  # 28x28 "L", white on black
    label: str

    def variants(self) -> dict[str, bytes]:
        """The same digit in every pixel layout the service must decode correctly."""
        pixels = np.asarray(self.image)
        alpha = Image.new("L", self.image.size, 255)
        rgb = self.image.convert("RGB")
        return {
            "grayscale png": encode(self.image, "PNG"),
            "16-bit png": encode(Image.fromarray(pixels.astype(np.uint16) * 257), "PNG"),
            "palette png": encode(self.image.convert("P"), "PNG"),
            "grayscale+alpha png": encode(Image.merge("LA", (self.image, alpha)), "PNG"),
            "rgba png": encode(self.image.convert("RGBA"), "PNG"),
            "cmyk jpeg": encode(self.image.convert("CMYK"), "JPEG", quality=98),
            "rgb webp": encode(self.image.convert("RGB"), "WEBP", lossless=True),
            "bmp": encode(self.image, "BMP"),
            # A JPEG carrying a second image after its own, as phone cameras write (HDR gain map, depth
            # map): Pillow reads it as MPO; its primary image is the photo.
            "mpo jpeg": encode(rgb, "MPO", save_all=True, append_images=[rgb.rotate(90)]),
        }


@pytest.fixture(scope="module")
def strict() -> Iterator[httpx.Client]:
    with running_server(LIMITS) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def digit(strict: httpx.Client, digit_files: list[DigitFile]) -> Digit:
    """The first committed digit the model gets right (fixed files, so always the same one)."""
    for file in digit_files:
        answer = strict.post(CLASSIFY, content=file.path.read_bytes(), headers=PNG)
        if answer.json()["results"][0]["predictions"][0]["label"] == file.label:
            return Digit(Image.open(file.path).convert("L"), file.label)
    raise AssertionError("the model gets no committed digit right")


def top1(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    label: str = response.json()["results"][0]["predictions"][0]["label"]
    return label


def assert_problem(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "server" not in response.headers and "x-powered-by" not in response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"].startswith("/problems/") or body["type"] == "about:blank"
    if type_ is not None:
        assert body["type"] == f"/problems/{type_}"
    assert_nothing_leaked(response.text)
    return body


# What an exception's text would carry out: traceback lines, a model file's name, or an absolute path
# under any usual filesystem root (POSIX and macOS), on whichever machine the test runs.
LEAK = re.compile(
    r'Traceback|File "|, line \d+, in |site-packages|\.onnx\b'
    r"|(?<![\w.])/(?:home|root|tmp|usr|opt|var|srv|mnt|etc|proc|Users|private|Library)/"
)


def assert_nothing_leaked(text: str) -> None:
    assert not LEAK.search(text), text
    # And the paths of this run itself, wherever they are: the checkout, the interpreter, the temp dir.
    for prefix in {str(REPOSITORY.parent), sys.prefix, tempfile.gettempdir(), str(Path.home())}:
        assert len(prefix) <= 1 or prefix not in text, (prefix, text)


@pytest.mark.parametrize(
    "variant",
    [
        "grayscale png",
        "16-bit png",
        "palette png",
        "grayscale+alpha png",
        "rgba png",
        "cmyk jpeg",
        "rgb webp",
        "bmp",
        "mpo jpeg",
    ],
)
def test_unusual_pixel_layouts_decode_correctly(strict: httpx.Client, digit: Digit, variant: str) -> None:
    assert top1(strict.post(CLASSIFY, content=digit.variants()[variant], headers=PNG)) == digit.label


@pytest.mark.parametrize("size", [(1, 4000), (4000, 1), (1, 1)])
def test_extreme_aspect_ratios_are_served(strict: httpx.Client, size: tuple[int, int]) -> None:
    image = encode(Image.new("L", size, 128), "PNG")
    assert strict.post(CLASSIFY, content=image, headers=PNG).status_code == 200
    features = strict.post(
        FEATURES,
        files=[("images", ("x.png", image, "image/png"))],
        data={"boxes": json.dumps([[[0, 0, size[0], size[1]]]])},
    )
    assert features.status_code == 200, features.text


Sender = Callable[[httpx.Client, Digit], httpx.Response]


def raw(data: Callable[[Digit], bytes], content_type: str | None = "image/png") -> Sender:
    headers = {"content-type": content_type} if content_type else {}
    return lambda http, d: http.post(CLASSIFY, content=data(d), headers=headers)


def frames(fmt: str) -> Callable[[Digit], bytes]:
    return lambda d: encode(d.image, fmt, save_all=True, append_images=[d.image.rotate(90)], duration=100)


def as_json(body: object, path: str = CLASSIFY) -> Sender:
    return lambda http, d: http.post(path, json=body)


def boxes(text: str, images: int = 1) -> Sender:
    def send(http: httpx.Client, d: Digit) -> httpx.Response:
        files = [("images", (f"{i}.png", encode(d.image, "PNG"), "image/png")) for i in range(images)]
        return http.post(FEATURES, files=files, data={"boxes": text})

    return send


def multipart(count: int) -> Sender:
    def send(http: httpx.Client, d: Digit) -> httpx.Response:
        files = [("images", (f"{i}.png", encode(d.image, "PNG"), "image/png")) for i in range(count)]
        return http.post(CLASSIFY, files=files)

    return send


def streamed(size: int) -> Sender:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(size // 65536):
            yield b"\0" * 65536

    return lambda http, d: http.post(CLASSIFY, content=chunks(), headers=PNG)


def b64(d: Digit) -> str:
    import base64

    return base64.b64encode(encode(d.image, "PNG")).decode()


CORPUS: dict[str, tuple[Sender, int, str | None]] = {
    # images
    "empty body": (raw(lambda d: b""), 400, "invalid-image"),
    "truncated png": (raw(lambda d: encode(d.image, "PNG")[:40]), 400, "invalid-image"),
    "truncated jpeg": (raw(lambda d: encode(d.image, "JPEG")[:200]), 400, "invalid-image"),
    "corrupt png": (raw(lambda d: corrupt(encode(d.image, "PNG"))), 400, "invalid-image"),
    "text as image/png": (raw(lambda d: b"hello, not an image" * 10), 400, "invalid-image"),
    "gif as image/png": (raw(lambda d: encode(d.image, "GIF")), 400, "invalid-image"),
    "animated png": (raw(frames("PNG")), 400, "invalid-image"),
    "animated webp": (raw(frames("WEBP")), 400, "invalid-image"),
    "animated gif": (raw(frames("GIF"), "image/gif"), 415, "unsupported-media-type"),
    "text/plain": (raw(lambda d: encode(d.image, "PNG"), "text/plain"), 415, "unsupported-media-type"),
    "no content type": (raw(lambda d: encode(d.image, "PNG"), None), 415, "unsupported-media-type"),
    "bomb 50k x 50k": (raw(lambda d: png_declaring(50_000, 50_000)), 413, "image-too-large"),
    "bomb 5k x 5k": (raw(lambda d: png_declaring(5_000, 5_000)), 413, "image-too-large"),
    "too many images (multipart)": (multipart(5), 422, "limit-exceeded"),
    "too many images (json)": (
        lambda h, d: h.post(CLASSIFY, json={"images": [b64(d)] * 5}),
        422,
        "limit-exceeded",
    ),
    # bodies
    "declared oversize body": (raw(lambda d: b"\0" * (2 << 20)), 413, None),
    "streamed oversize body": (streamed(2 << 20), 413, None),
    "invalid json": (raw(lambda d: b'{"images": [', "application/json"), 400, "invalid-request"),
    "invalid base64": (as_json({"images": ["not*base64"]}), 400, "invalid-request"),
    "base64 of text": (as_json({"images": ["aGVsbG8="]}), 400, "invalid-image"),
    "images not a list": (as_json({"images": "abc"}), 422, "invalid-field"),
    "image not a string": (as_json({"images": [1]}), 422, "invalid-field"),
    "json array body": (as_json([]), 422, "invalid-field"),
    "missing field": (as_json({}), 422, "invalid-field"),
    "unknown extra field": (
        lambda h, d: h.post(CLASSIFY, json={"images": [b64(d)], "x": 1}),
        422,
        "invalid-field",
    ),
    "no images": (as_json({"images": []}), 422, "invalid-field"),
    "multipart images as text": (
        lambda h, d: h.post(CLASSIFY, data={"images": "x"}, files={"f": b""}),
        422,
        None,
    ),
    "malformed multipart": (
        raw(lambda d: b"--x\r\n", "multipart/form-data; boundary=y"),
        400,
        "invalid-request",
    ),
    "misspelt images field": (
        lambda h, d: h.post(CLASSIFY, files=[("image", ("a.png", encode(d.image, "PNG"), "image/png"))]),
        422,
        "invalid-field",
    ),
    "top_k as a form field": (
        lambda h, d: h.post(
            CLASSIFY, files=[("images", ("a.png", encode(d.image, "PNG"), "image/png"))], data={"top_k": "1"}
        ),
        422,
        "invalid-field",
    ),
    "boxes on classify": (
        lambda h, d: h.post(
            CLASSIFY, files=[("images", ("a.png", encode(d.image, "PNG"), "image/png"))], data={"boxes": "[]"}
        ),
        422,
        "invalid-field",
    ),
    "many text fields": (
        lambda h, d: h.post(CLASSIFY, files=[("x", (None, b"1"))] * 80),
        422,
        "limit-exceeded",
    ),
    "gzip-encoded image": (
        lambda h, d: h.post(
            CLASSIFY,
            content=gzip.compress(encode(d.image, "PNG")),
            headers={**PNG, "content-encoding": "gzip"},
        ),
        415,
        "unsupported-media-type",
    ),
    "features json missing boxes": (as_json({"items": [{"image": "AA=="}]}, FEATURES), 422, "invalid-field"),
    # boxes
    "box with 3 numbers": (boxes("[[[1, 2, 3]]]"), 422, "invalid-field"),
    "box with 5 numbers": (boxes("[[[1, 2, 3, 4, 5]]]"), 422, "invalid-field"),
    "box of strings": (boxes('[[["a", "b", "c", "d"]]]'), 422, "invalid-field"),
    "NaN literal": (boxes("[[[NaN, 0, 4, 4]]]"), 400, "invalid-request"),
    "overflowing number": (boxes("[[[0, 0, 1e999, 4]]]"), 400, "invalid-request"),
    "infinite coordinate": (boxes('[[[0, 0, "inf", 4]]]'), 422, "invalid-field"),
    "NaN coordinate (json)": (
        lambda h, d: h.post(FEATURES, json={"items": [{"image": b64(d), "boxes": [["nan", 0, 4, 4]]}]}),
        422,
        "invalid-field",
    ),
    "negative width": (boxes("[[[10, 0, 5, 5]]]"), 422, "invalid-field"),
    "negative height": (boxes("[[[0, 10, 5, 5]]]"), 422, "invalid-field"),
    "wholly outside": (boxes("[[[100, 100, 120, 120]]]"), 422, "invalid-field"),
    "wholly outside, negative": (boxes("[[[-20, -20, -5, -5]]]"), 422, "invalid-field"),
    "past the overhang margin": (boxes("[[[0, 0, 36, 10]]]"), 422, "invalid-field"),
    "huge box": (boxes("[[[0, 0, 40000, 40000]]]"), 422, "invalid-field"),
    "coordinates past float32's range": (boxes("[[[0, 0, 1e300, 4]]]"), 422, "invalid-field"),
    "coordinate that overflows float32 once scaled": (boxes("[[[0, 0, 3.4e38, 4]]]"), 422, "invalid-field"),
    "degenerate box is fine, huge one beside it is not": (
        boxes("[[[4, 4, 4, 4], [0, 0, 1e30, 4]]]"),
        422,
        "invalid-field",
    ),
    "too many boxes": (boxes(json.dumps([[[0, 0, 4, 4]] * 9])), 422, "limit-exceeded"),
    "fewer box lists than images": (boxes("[[]]", images=2), 422, "invalid-field"),
    "more box lists than images": (boxes("[[], []]"), 422, "invalid-field"),
    "boxes not json": (boxes("boxes"), 400, "invalid-request"),
    "boxes sent twice": (
        lambda h, d: h.post(
            FEATURES,
            files=[("images", ("a.png", encode(d.image, "PNG"), "image/png"))],
            data={"boxes": ["[[[0, 0, 4, 4]]]", "[[]]"]},
        ),
        422,
        "invalid-field",
    ),
    "coordinates as numeric strings": (boxes('[[["0", "0", "4", "4"]]]'), 422, "invalid-field"),
    "coordinate true": (boxes("[[[true, 0, 4, 4]]]"), 422, "invalid-field"),
    "coordinate null": (boxes("[[[null, 0, 4, 4]]]"), 422, "invalid-field"),
    "coordinate as a numeric string (json)": (
        lambda h, d: h.post(FEATURES, json={"items": [{"image": b64(d), "boxes": [["0", 0, 4, 4]]}]}),
        422,
        "invalid-field",
    ),
    "coordinate true (json)": (
        lambda h, d: h.post(FEATURES, json={"items": [{"image": b64(d), "boxes": [[True, 0, 4, 4]]}]}),
        422,
        "invalid-field",
    ),
    "boxes missing": (
        lambda h, d: h.post(FEATURES, files=[("images", ("a.png", b"x", "image/png"))]),
        422,
        None,
    ),
    # routing
    "unknown model": (lambda h, d: h.post("/v1/models/nope/classify", json={}), 404, "model-not-found"),
    "unknown model metadata": (lambda h, d: h.get("/v1/models/nope"), 404, "model-not-found"),
    "wrong method": (lambda h, d: h.get(CLASSIFY), 405, None),
    "wrong method on metadata": (lambda h, d: h.delete("/v1/models/lenet5-mnist"), 405, None),
    "unknown route": (lambda h, d: h.get("/v1/nothing-here"), 404, None),
    "top_k 0": (lambda h, d: h.post(CLASSIFY, params={"top_k": 0}, json={}), 422, "validation"),
    "top_k misspelt": (lambda h, d: h.post(CLASSIFY, params={"topk": 1}, json={}), 422, "validation"),
    "encoding misspelt": (lambda h, d: h.post(FEATURES, params={"encodin": "x"}, json={}), 422, "validation"),
    "top_k not a number": (
        lambda h, d: h.post(CLASSIFY, params={"top_k": "many"}, json={}),
        422,
        "validation",
    ),
    "top_k over max_top_k": (
        lambda h, d: h.post(CLASSIFY, params={"top_k": 11}, json={}),
        422,
        "limit-exceeded",
    ),
    "unknown encoding": (lambda h, d: h.post(FEATURES, params={"encoding": "x"}, json={}), 422, "validation"),
    "classify on a region model": (
        lambda h, d: h.post("/v1/models/digits-roialign/classify", json={}),
        400,
        None,
    ),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_bad_input_is_a_problem(strict: httpx.Client, digit: Digit, case: str) -> None:
    send, status, type_ = CORPUS[case]
    body = assert_problem(send(strict, digit), status, type_)
    if status == 422 and type_ == "validation":
        assert "top_k" in body["detail"] or "encoding" in body["detail"]  # names the parameter
    if case.endswith("misspelt"):
        assert "unknown; this route takes top_k" in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/../../etc/passwd/classify",
        "/v1/models/..%2F..%2Fetc%2Fpasswd/classify",
        "/v1/models/%2e%2e/classify",
        "/v1/models/lenet5-mnist%00/classify",
        "/v1/models/%2Fetc%2Fpasswd",
    ],
)
def test_path_tricks_find_no_model(strict: httpx.Client, path: str) -> None:
    # http.client sends the path byte for byte; httpx would normalise the dots away first.
    url = httpx.URL(str(strict.base_url))
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        connection.request("POST", path, body=b"{}", headers={"content-type": "application/json"})
        reply = connection.getresponse()
        assert reply.status == 404
        assert reply.getheader("content-type") == "application/problem+json"
        assert b"root:" not in reply.read()
    finally:
        connection.close()


def test_boxes_partly_outside_are_pooled_and_zero_boxes_are_empty(strict: httpx.Client, digit: Digit) -> None:
    # The images are 28x28: a box may reach 7 pixels (a quarter of the side) past each edge.
    response = boxes("[[[-5, -7, 10, 35], [20, 20, 35, 34]], []]", images=2)(strict, digit)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [len(r["boxes"]) for r in results] == [2, 0]
    assert results[0]["boxes"][0]["box"] == [-5, -7, 10, 35]  # echoed as sent


def test_boxes_are_echoed_and_named_as_sent(strict: httpx.Client, digit: Digit) -> None:
    third = 1 / 3  # not a float32: echoing the float32 the model sees would change its digits
    response = boxes(json.dumps([[[third, 2.1, 10, 12]]]))(strict, digit)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["boxes"][0]["box"] == [third, 2.1, 10, 12]

    refused = assert_problem(boxes("[[[0, 0, 1e300, 4]]]")(strict, digit), 422, "invalid-field")
    assert "[0.0, 0.0, 1e+300, 4.0]" in refused["detail"]  # what was sent, not the inf it became

    items = [{"image": b64(digit), "boxes": []}, {"image": b64(digit), "boxes": [[0, 0, 4, 4], [9, 0, 4, 4]]}]
    refused = assert_problem(strict.post(FEATURES, json={"items": items}), 422, "invalid-field")
    assert refused["detail"].startswith("items[1].boxes[1] [9.0, 0.0, 4.0, 4.0]"), refused["detail"]
    refused = assert_problem(boxes("[[[0, 0, 4, 4], [9, 0, 4, 4]]]")(strict, digit), 422, "invalid-field")
    assert refused["detail"].startswith("boxes[0][1] [9.0, 0.0, 4.0, 4.0]"), refused["detail"]


def test_a_form_without_images_says_so_whatever_else_it_holds(strict: httpx.Client) -> None:
    for fields in ({"boxes": "[[]]"}, {"boxes": "[]"}):
        form = {name: (None, value.encode()) for name, value in fields.items()}  # text parts, no file
        refused = assert_problem(strict.post(FEATURES, files=form), 422, "invalid-field")
        assert refused["detail"].startswith("no images in the request"), refused["detail"]


def test_counts_are_refused_before_the_items_are_read(strict: httpx.Client, digit: Digit) -> None:
    """Image and box limits come first: items that would each fail validation are never walked (a body of
    680,000 items held the event loop for seconds before being refused by count)."""
    images = {"images": ["not base64!"] * 5}  # the strict server takes 4
    refused = assert_problem(strict.post(CLASSIFY, json=images), 422, "limit-exceeded")
    assert refused["detail"] == "5 images; at most 4 per request"
    items = {"items": [{"image": "not base64!", "boxes": [["x", "y", "z", "w"]] * 9}]}
    refused = assert_problem(strict.post(FEATURES, json=items), 422, "limit-exceeded")
    assert refused["detail"] == "9 boxes; at most 8 per request"
    refused = assert_problem(
        boxes(json.dumps([[["x", "y", "z", "w"]] * 9]))(strict, digit), 422, "limit-exceeded"
    )
    assert refused["detail"] == "9 boxes; at most 8 per request"


def test_the_server_still_answers_correctly_after_the_corpus(strict: httpx.Client, digit: Digit) -> None:
    for case in CORPUS:  # once more, back to back, then the known digit
        send, status, _ = CORPUS[case]
        assert send(strict, digit).status_code == status, case
    assert top1(strict.post(CLASSIFY, content=encode(digit.image, "PNG"), headers=PNG)) == digit.label
    assert strict.get("/health/ready").status_code == 200
