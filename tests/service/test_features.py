from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from poolserve.repository.manifest import Manifest
from poolserve.service.imaging.preprocess import decode_and_preprocess
from tests.service.conftest import REGION_MODELS, CanvasFile


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Canvas:
    blob: bytes
    image: np.ndarray  # (H, W) uint8
    boxes: np.ndarray  # (K, 4) float32


@pytest.fixture(scope="module")
def canvases(canvas_files: list[CanvasFile]) -> list[Canvas]:
    """The committed canvases of held-out digits with their true boxes."""
    return [
        Canvas(c.path.read_bytes(), np.asarray(Image.open(c.path).convert("L")), c.boxes)
        for c in canvas_files
    ]


def direct_outputs(
    session: ort.InferenceSession, manifest: Manifest, blob: bytes, boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """ORT on one preprocessed image, boxes mapped by hand: the slow, obvious reference (features, scores)."""
    images, (transform,) = decode_and_preprocess([blob], manifest.preprocessing, max_pixels=1 << 24)
    io_ = manifest.io
    assert io_.boxes and io_.box_batch_indices and io_.features
    scale = np.array([transform.scale_x, transform.scale_y] * 2, np.float32)
    feeds = {
        io_.image.name: images,
        io_.boxes.name: (boxes * scale).astype(np.float32).reshape(-1, 4),
        io_.box_batch_indices.name: np.zeros(len(boxes), np.int64),
    }
    outputs = session.run([io_.features.name] + ([io_.scores.name] if io_.scores else []), feeds)
    return np.asarray(outputs[0]), (np.asarray(outputs[1]) if io_.scores else None)


def multipart(blobs: list[bytes], boxes: list[np.ndarray]) -> dict[str, Any]:
    return {
        "files": [("images", (f"{i}.png", b, "image/png")) for i, b in enumerate(blobs)],
        "data": {"boxes": json.dumps([b.tolist() for b in boxes])},
    }


def json_items(blobs: list[bytes], boxes: list[np.ndarray]) -> dict[str, Any]:
    items = [
        {"image": base64.b64encode(b).decode(), "boxes": bx.tolist()}
        for b, bx in zip(blobs, boxes, strict=True)
    ]
    return {"json": {"items": items}}


@pytest.mark.parametrize("model", REGION_MODELS)
@pytest.mark.parametrize("form", [multipart, json_items])
def test_features_equal_direct_ort_with_mixed_box_counts(
    client: httpx.Client, manifests, reference_sessions, canvases, model: str, form
) -> None:
    blobs = [c.blob for c in canvases[:3]]
    boxes = [canvases[1].boxes, np.zeros((0, 4), np.float32), canvases[3].boxes[:1]]
    response = client.post(f"/v1/models/{model}/features", params={"top_k": 2}, **form(blobs, boxes))
    assert response.status_code == 200, response.text
    body = response.json()
    manifest = manifests[model]
    assert (body["model"], body["feature_dim"], body["encoding"]) == (model, manifest.feature_dim, "float32")
    assert [len(r["boxes"]) for r in body["results"]] == [len(b) for b in boxes]
    for blob, sent, result in zip(blobs, boxes, body["results"], strict=True):
        if not len(sent):
            continue
        expected, scores = direct_outputs(reference_sessions[model], manifest, blob, sent)
        got = np.array([row["features"] for row in result["boxes"]], np.float32)
        # Same model and CPU as the reference, other batch composition: last-bit rounding only (a box
        # pooled from the wrong image or place differs by whole units).
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert [row["box"] for row in result["boxes"]] == sent.tolist()
        assert scores is not None
        assert [row["predictions"][0]["index"] for row in result["boxes"]] == list(scores.argmax(1))
        assert all(len(row["predictions"]) == 2 for row in result["boxes"])


@pytest.mark.parametrize("model", REGION_MODELS)
def test_boxes_on_a_resized_copy_map_into_the_model_frame(client: httpx.Client, canvases, model: str) -> None:
    canvas = canvases[4]  # four digits
    size = canvas.image.shape[1] * 2, canvas.image.shape[0] * 2
    upscaled = np.asarray(Image.fromarray(canvas.image).resize(size, Image.Resampling.BILINEAR))
    original = client.post(f"/v1/models/{model}/features", **multipart([canvas.blob], [canvas.boxes]))
    doubled = client.post(f"/v1/models/{model}/features", **multipart([png(upscaled)], [canvas.boxes * 2]))
    unmapped = client.post(f"/v1/models/{model}/features", **multipart([png(upscaled)], [canvas.boxes]))

    def vectors(response: httpx.Response) -> np.ndarray:
        assert response.status_code == 200, response.text
        return np.array([row["features"] for row in response.json()["results"][0]["boxes"]])

    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)

    # The resize round trip blurs a little; wrongly mapped boxes pool a different region altogether.
    similar = cosine(vectors(original), vectors(doubled))
    assert similar.min() > 0.97
    assert (similar > cosine(vectors(original), vectors(unmapped))).all()


@pytest.mark.parametrize(
    "orientation",
    [b"\x01\x00\x01\x00\x00\x00\x06", b"\x02\x00\x02\x00\x00\x006\x00"],
    ids=["as-a-byte", "as-text"],
)
def test_an_orientation_tag_that_is_not_an_integer_leaves_pixels_and_boxes_as_sent(
    client: httpx.Client, canvases, orientation: bytes
) -> None:
    """A JPEG large enough to decode at reduced scale, whose EXIF orientation tag holds 6 as another type:
    nothing is turned, neither the pixels nor the frame the boxes map into (it used to be a 500, or boxes
    mapped into a turned frame the pixels never took)."""
    canvas = canvases[4]
    wide = np.pad(canvas.image, ((0, 0), (0, canvas.image.shape[1] // 2)))  # not square: a turn shows
    size = wide.shape[1] * 8, wide.shape[0] * 8
    large = Image.fromarray(wide).resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    large.save(buffer, format="JPEG", quality=95)
    plain = buffer.getvalue()
    # One IFD entry, tag 0x0112 (orientation), then the given type, count and value.
    block = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01" + orientation.ljust(10, b"\x00")
    block += b"\x00\x00\x00\x00"
    tagged = plain[:2] + b"\xff\xe1" + (len(block) + 2).to_bytes(2, "big") + block + plain[2:]
    boxes = canvas.boxes * 8

    def features(blob: bytes) -> list[list[float]]:
        response = client.post("/v1/models/digits-roialign/features", **multipart([blob], [boxes]))
        assert response.status_code == 200, response.text
        return [row["features"] for row in response.json()["results"][0]["boxes"]]

    assert Image.open(io.BytesIO(tagged)).getexif()[0x0112] in (b"\x06", "6")  # the tag reads as intended
    assert features(tagged) == features(plain)


@pytest.mark.parametrize("model", REGION_MODELS)
def test_npy_and_float16_encodings_carry_the_same_features(
    client: httpx.Client, canvases, model: str
) -> None:
    blobs = [c.blob for c in canvases]
    boxes = [c.boxes for c in canvases]
    reference = client.post(f"/v1/models/{model}/features", **multipart(blobs, boxes)).json()
    expected = np.array([row["features"] for r in reference["results"] for row in r["boxes"]], np.float32)

    npy = client.post(
        f"/v1/models/{model}/features", headers={"accept": "application/x-npy"}, **multipart(blobs, boxes)
    )
    assert npy.status_code == 200 and npy.headers["content-type"] == "application/x-npy"
    assert npy.headers["x-box-counts"] == ",".join(str(len(b)) for b in boxes)
    array = np.load(io.BytesIO(npy.content), allow_pickle=False)
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, expected)

    half = client.post(
        f"/v1/models/{model}/features", params={"encoding": "float16-base64"}, **multipart(blobs, boxes)
    ).json()
    assert half["encoding"] == "float16-base64"
    decoded = np.array(
        [
            np.frombuffer(base64.b64decode(row["features"]), "<f2")
            for r in half["results"]
            for row in r["boxes"]
        ]
    )
    # float16 keeps 11 significant bits: rounding is at most 4.9e-4 relative, so 1e-3 is twice that.
    np.testing.assert_allclose(decoded, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/x-npy", "application/x-npy"),
        ("Application/X-NPY", "application/x-npy"),
        ("application/x-npy, */*", "application/x-npy"),
        ("application/json;q=0.5, application/x-npy", "application/x-npy"),
        ("application/x-npy;q=0, application/json", "application/json"),
        ("application/json, application/x-npy;q=0.1", "application/json"),
        ("application/x-npy+zip", "application/json"),
        ("*/*", "application/json"),
        ("text/html", "application/json"),
    ],
)
def test_the_response_type_follows_the_accept_header(
    client: httpx.Client, canvases, accept: str, media_type: str
) -> None:
    canvas = canvases[0]
    response = client.post(
        "/v1/models/digits-roialign/features",
        headers={"accept": accept},
        **multipart([canvas.blob], [canvas.boxes]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type


def test_zero_boxes_everywhere_is_valid(client: httpx.Client, canvases) -> None:
    blobs = [c.blob for c in canvases[:2]]
    empty = [np.zeros((0, 4), np.float32)] * 2
    response = client.post("/v1/models/digits-roialign/features", **multipart(blobs, empty))
    assert response.status_code == 200, response.text
    assert [r["boxes"] for r in response.json()["results"]] == [[], []]
    npy = client.post(
        "/v1/models/digits-roialign/features",
        headers={"accept": "application/x-npy"},
        **multipart(blobs, empty),
    )
    assert np.load(io.BytesIO(npy.content)).shape[0] == 0


@pytest.mark.parametrize(
    ("boxes", "status"),
    [
        ("[[[10, 10, 5, 20]]]", 422),  # x2 < x1
        ("[[], []]", 422),  # two lists for one image
        ("[[[1, 2, 3]]]", 422),
        ("not json", 400),
        (json.dumps([[[0, 0, 1, 1]] * 2000]), 422),  # over max_boxes_per_request
    ],
)
def test_bad_boxes_are_problems(client: httpx.Client, canvases, boxes: str, status: int) -> None:
    files = [("images", ("a.png", canvases[0].blob, "image/png"))]
    response = client.post("/v1/models/digits-roialign/features", files=files, data={"boxes": boxes})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_concurrent_requests_each_get_their_own_features(
    client: httpx.Client, manifests, reference_sessions, canvases
) -> None:
    """Requests batched together (likely, not required) must still scatter back to the right caller."""
    model = "digits-roialign"
    jobs = [(c.blob, c.boxes[: i % 3 + 1]) for i, c in enumerate(canvases * 3)]

    def send(job: tuple[bytes, np.ndarray]) -> np.ndarray:
        response = client.post(f"/v1/models/{model}/features", **multipart([job[0]], [job[1]]))
        assert response.status_code == 200, response.text
        return np.array([row["features"] for row in response.json()["results"][0]["boxes"]], np.float32)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, jobs))
    for (blob, boxes), got in zip(jobs, answers, strict=True):
        expected, _ = direct_outputs(reference_sessions[model], manifests[model], blob, boxes)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
