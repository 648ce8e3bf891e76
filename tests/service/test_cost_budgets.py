"""A request's cost is bounded before it is paid, against a real server with the default limits: decoded
pixels from the headers, decodes at once, and a region request's RoI cost (``max_request_roi_cost``) on
``mtcnn-onet-regions``, whose boxes cost more the larger they are, through /v1 (one image and several,
multipart and JSON) and /v2."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from PIL import Image

from poolserve.repository.manifest import Manifest
from poolserve.service.imaging.preprocess import decode_and_preprocess
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


ROI_MODEL = "mtcnn-onet-regions"  # RoiAlign 48 x 48 out of the 512 x 512 image, sampling by box size
# On a 512 x 512 image (the model's own input frame, so boxes reach onnxruntime as sent): the largest box
# the box policy allows reads 4 cells per sample, 48 x 48 bins of ceil(768 / 48)^2 samples; a box of at
# most 48 x 48 one sample per bin.
LARGEST, LARGEST_COST = [-128.0, -128.0, 640.0, 640.0], 4 * 48 * 48 * 16 * 16
SMALL, SMALL_COST = [200.0, 100.0, 248.0, 148.0], 4 * 48 * 48


def photo(seed: int = 0) -> bytes:
    """A 512 x 512 RGB PNG with some structure, so that features differ between boxes."""
    y, x = np.mgrid[:512, :512]
    pixels = np.stack([(x + seed) % 256, y % 256, (x * y // 97) % 256], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def at_the_budget(budget: int) -> tuple[list[list[float]], int]:
    """As many of the largest boxes as ``budget`` pays for, then small ones up to it: the boxes and their
    cost, which one more small box takes past the budget."""
    largest = budget // LARGEST_COST
    small = (budget - largest * LARGEST_COST) // SMALL_COST
    return [LARGEST] * largest + [SMALL] * small, largest * LARGEST_COST + small * SMALL_COST


def features_form(http: httpx.Client, per_image: list[list[list[float]]]) -> httpx.Response:
    files = [("images", (f"{i}.png", photo(i), "image/png")) for i in range(len(per_image))]
    return http.post(f"/v1/models/{ROI_MODEL}/features", files=files, data={"boxes": json.dumps(per_image)})


def features_json(http: httpx.Client, per_image: list[list[list[float]]]) -> httpx.Response:
    items = [{"image": base64.b64encode(photo(i)).decode(), "boxes": b} for i, b in enumerate(per_image)]
    return http.post(f"/v1/models/{ROI_MODEL}/features", json={"items": items})


def features_v2(http: httpx.Client, manifest: Manifest, boxes: list[list[float]]) -> httpx.Response:
    images, _ = decode_and_preprocess([photo()], manifest.preprocessing, 1 << 24)
    io_ = manifest.io
    assert io_.boxes is not None and io_.box_batch_indices is not None
    tensors = [
        (io_.image.name, "FP32", images),
        (io_.boxes.name, "FP32", np.asarray(boxes, np.float32).reshape(-1, 4)),
        (io_.box_batch_indices.name, "INT64", np.zeros(len(boxes), np.int64)),
    ]
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": n,
                    "shape": list(a.shape),
                    "datatype": t,
                    "parameters": {"binary_data_size": a.nbytes},
                }
                for n, t, a in tensors
            ]
        }
    )
    return http.post(
        f"/v2/models/{ROI_MODEL}/infer",
        content=header + b"".join(a.tobytes() for _, _, a in tensors),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )


def assert_over_budget(reply: httpx.Response, boxes: int, cost: int, budget: int, costliest: str) -> None:
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["type"] == "/problems/limit-exceeded"
    assert problem["detail"].startswith(
        f"{boxes} boxes have an RoI cost of {cost}, over the limit of {budget} per request "
        "(max_request_roi_cost)"
    )
    assert (
        f"the costliest, {costliest}, costs {LARGEST_COST}. Send fewer or smaller boxes" in problem["detail"]
    )


def test_a_region_request_just_over_the_roi_budget_is_refused_and_one_just_under_served(
    client: httpx.Client,
) -> None:
    budget = Settings(repository=REPOSITORY).max_request_roi_cost  # what the shared server runs with
    boxes, cost = at_the_budget(budget)
    assert cost <= budget < cost + SMALL_COST and len(boxes) + 1 <= Settings().max_boxes_per_request
    served = features_form(client, [boxes])
    assert served.status_code == 200, served.text
    rows = served.json()["results"][0]["boxes"]
    assert len(rows) == len(boxes) and all(np.isfinite(r["features"]).all() for r in rows)
    over = features_form(client, [[*boxes, SMALL]])
    assert_over_budget(over, len(boxes) + 1, cost + SMALL_COST, budget, f"boxes[0][0] {LARGEST}")


def test_the_roi_budget_counts_every_image_of_a_batch_request(client: httpx.Client) -> None:
    """Each image's boxes are well within the budget; all of them together are not."""
    budget = Settings(repository=REPOSITORY).max_request_roi_cost
    boxes, cost = at_the_budget(budget)
    shares = [boxes[i::3] for i in range(3)]
    served = features_json(client, shares)
    assert served.status_code == 200, served.text
    assert [len(r["boxes"]) for r in served.json()["results"]] == [len(s) for s in shares]
    shares[2] = [*shares[2], SMALL]
    for send, first in ((features_json, "items[0].boxes[0]"), (features_form, "boxes[0][0]")):
        assert_over_budget(
            send(client, shares), len(boxes) + 1, cost + SMALL_COST, budget, f"{first} {LARGEST}"
        )


def test_v2_tensors_pass_the_same_roi_budget(client: httpx.Client, manifests: dict[str, Manifest]) -> None:
    budget = Settings(repository=REPOSITORY).max_request_roi_cost
    largest = budget // LARGEST_COST
    served = features_v2(client, manifests[ROI_MODEL], [LARGEST] * largest)
    assert served.status_code == 200, served.text
    assert len(served.json()["outputs"][0]["data"]) == largest * 256
    over = features_v2(client, manifests[ROI_MODEL], [SMALL, *[LARGEST] * (largest + 1)])
    assert over.status_code == 422 and over.headers["content-type"] == "application/json"
    assert over.json()["error"].startswith(
        f"{largest + 2} boxes have an RoI cost of {SMALL_COST + (largest + 1) * LARGEST_COST}, "
        f"over the limit of {budget} per request (max_request_roi_cost)"
    )
    assert f"the costliest, input 'boxes' row 1, costs {LARGEST_COST}" in over.json()["error"]


def test_the_roi_budget_is_set_by_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shutil.copytree(REPOSITORY / ROI_MODEL, tmp_path / ROI_MODEL)
    monkeypatch.setenv("POOLSERVE_MAX_REQUEST_ROI_COST", str(3 * SMALL_COST))
    settings = Settings(repository=tmp_path)
    assert settings.max_request_roi_cost == 3 * SMALL_COST
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert features_form(http, [[SMALL] * 3]).status_code == 200
        refused = features_form(http, [[SMALL] * 4])
        assert refused.status_code == 422
        assert refused.json()["detail"].startswith(
            f"4 boxes have an RoI cost of {4 * SMALL_COST}, over the limit of {3 * SMALL_COST} per request"
        )
        assert features_form(http, [[LARGEST]]).status_code == 422  # one box can be too much
        assert features_form(http, [[]]).status_code == 200  # no boxes cost nothing
