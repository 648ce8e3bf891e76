"""Hostile traffic against a real ``poolserve serve`` process, from several clients at once.

The whole bad-input corpus plus huge, inverted, degenerate, NaN and infinite boxes on every region model,
and boxes one past the RoI budget (``max_request_roi_cost``) on mtcnn-onet-regions beside some within it,
through /v1 and /v2, shuffled among good requests: every good request gets the answer it gets alone,
every bad one a 4xx, and the server is the same, live process at the end. Also the reported cases one by
one: a box 100x its image (a 500 once), huge and normal boxes from six clients at once (a segfault
once), an inverted box on /v2 (a 500, or a spinning onnxruntime), a box 10x its image (0.7 s once).
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import pytest
from PIL import Image

from poolserve.repository.manifest import Manifest
from poolserve.service.imaging.preprocess import decode_and_preprocess
from tests.conftest import server_environment
from tests.service.conftest import REPOSITORY, ROOT, DigitFile, wait_until_ready
from tests.service.supervised import free_port
from tests.service.test_bad_inputs import CORPUS, LIMITS, Digit, raw, streamed

REGION_MODELS = ["digits-roialign", "digits-roipool", "mtcnn-onet-regions"]
BODY_LIMIT = 4 << 20  # room for a 3 MiB /v2 tensor of a 512x512 RGB image; the corpus's limits otherwise
HOSTILE_BOXES: dict[str, list[float]] = {  # on a 200x200 image
    "huge": [0, 0, 40000, 40000],
    "100x the image": [0, 0, 20000, 20000],
    "10x the image": [0, 0, 2000, 2000],
    "inverted x": [100, 10, 10, 120],
    "inverted y": [10, 120, 100, 10],
    "NaN": [float("nan"), 10, 100, 120],
    "inf": [0, 0, float("inf"), 120],
    "-inf": [float("-inf"), 10, 100, 120],
    "wholly outside": [-500, -500, -300, -300],
    "far past the margin": [-150, -150, 100, 100],
}
# The RoI budget (max_request_roi_cost), here five of the largest boxes mtcnn-onet-regions allows on the
# 200 x 200 image ([-128, -128, 640, 640] in its 512 x 512 frame, 4 * 48 * 48 * 16 * 16 cells each), so
# that a request over it stays within the corpus's 8 boxes: six of them are refused, four and a normal box
# served.
LARGEST = [-50.0, -50.0, 250.0, 250.0]
ROI_BUDGET = 5 * 4 * 48 * 48 * 16 * 16
OVER_THE_ROI_BUDGET = [LARGEST] * 6
GOOD_BOXES: dict[str, list[float]] = {
    "normal": [10, 10, 100, 120],
    "degenerate": [50, 50, 50, 50],
    "whole image": [0, 0, 200, 200],
}

Response = tuple[int, bytes]
Send = Callable[[httpx.Client], httpx.Response]


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = free_port()
    env = {
        **server_environment(),
        "POOLSERVE_PORT": str(port),
        "POOLSERVE_REPOSITORY": str(REPOSITORY),
        "POOLSERVE_LOG_LEVEL": "warning",
        "POOLSERVE_MAX_BODY_BYTES": str(BODY_LIMIT),
        "POOLSERVE_MAX_IMAGES_PER_REQUEST": str(LIMITS.max_images_per_request),
        "POOLSERVE_MAX_BOXES_PER_REQUEST": str(LIMITS.max_boxes_per_request),
        "POOLSERVE_MAX_TOP_K": str(LIMITS.max_top_k),
        "POOLSERVE_MAX_REQUEST_ROI_COST": str(ROI_BUDGET),
        # Decode overload (503) is tested elsewhere; here every client may decode at once.
        "POOLSERVE_MAX_CONCURRENT_DECODES": "16",
    }
    # Unsupervised: a crash must show as a dead process, not be hidden by a restart.
    command = [sys.executable, "-m", "poolserve", "serve", "--no-supervise"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_until_ready(process, port, timeout_s=120)
        yield Server(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(30)


def png(size: tuple[int, int] = (200, 200)) -> bytes:
    """A deterministic RGB test image: a gradient with a bright square, so features are not all equal."""
    y, x = np.mgrid[: size[1], : size[0]]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    pixels[40:120, 30:110] = 250
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def json_number(value: float) -> float | str:
    """JSON has no NaN or infinity: those go as strings, which /v1 refuses as not numbers (422) before
    the box policy; /v2's binary tensors carry them to the box policy itself."""
    return value if np.isfinite(value) else str(value)


def features_v1(model: str, box: list[float]) -> Send:
    return features_v1_boxes(model, [box])


def features_v1_boxes(model: str, boxes: list[list[float]]) -> Send:
    sent = json.dumps([[[json_number(v) for v in box] for box in boxes]])
    files = [("images", ("a.png", png(), "image/png"))]
    return lambda http: http.post(f"/v1/models/{model}/features", files=files, data={"boxes": sent})


def features_v1_json(model: str, box: list[float]) -> Send:
    return features_v1_json_boxes(model, [box])


def features_v1_json_boxes(model: str, boxes: list[list[float]]) -> Send:
    import base64

    sent = [[json_number(v) for v in box] for box in boxes]
    item = {"image": base64.b64encode(png()).decode(), "boxes": sent}
    return lambda http: http.post(f"/v1/models/{model}/features", json={"items": [item]})


def v2_binary(model: str, tensors: list[tuple[str, str, np.ndarray]]) -> Send:
    inputs = [
        {"name": name, "shape": list(a.shape), "datatype": dt, "parameters": {"binary_data_size": a.nbytes}}
        for name, dt, a in tensors
    ]
    header = orjson.dumps({"inputs": inputs})
    body = header + b"".join(a.tobytes() for _, _, a in tensors)
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "content-type": "application/octet-stream",
    }
    return lambda http: http.post(f"/v2/models/{model}/infer", content=body, headers=headers)


def features_v2(manifest: Manifest, boxes: list[list[float]], indices: list[int] | None = None) -> Send:
    images, (transform,) = decode_and_preprocess([png()], manifest.preprocessing, 1 << 24)
    scale = np.asarray([transform.scale_x, transform.scale_y] * 2)
    frame = (np.asarray(boxes, np.float64) * scale).astype(np.float32)
    io_ = manifest.io
    assert io_.boxes is not None and io_.box_batch_indices is not None
    batch = np.asarray(indices if indices is not None else [0] * len(boxes), np.int64)
    return v2_binary(
        manifest.name,
        [
            (io_.image.name, "FP32", images),
            (io_.boxes.name, "FP32", frame),
            (io_.box_batch_indices.name, "INT64", batch),
        ],
    )


def classify(blob: bytes) -> Send:
    headers = {"content-type": "image/png"}
    return lambda http: http.post("/v1/models/lenet5-mnist/classify?top_k=10", content=blob, headers=headers)


def corpus_digit(digit_files: list[DigitFile]) -> Digit:
    file = digit_files[0]
    return Digit(Image.open(file.path).convert("L"), file.label)


@dataclass(frozen=True)
class Job:
    name: str
    send: Send
    good: bool
    status: int | None = None  # the exact status a bad request must get, where the corpus says it
    says: str | None = None  # what a bad request's answer must say, where it matters which refusal it is


def jobs(manifests: dict[str, Manifest], digit: Digit, digit_files: list[DigitFile]) -> list[Job]:
    corpus = {
        **CORPUS,
        # the corpus's oversize bodies, past this server's larger body limit
        "declared oversize body": (raw(lambda d: b"\0" * (BODY_LIMIT + 1)), 413, None),
        "streamed oversize body": (streamed(BODY_LIMIT + (1 << 16)), 413, None),
    }
    out = [
        Job(f"corpus: {name}", (lambda s: lambda http: s(http, digit))(send), False, status)
        for name, (send, status, _) in corpus.items()
    ]
    for model in REGION_MODELS:
        for name, box in HOSTILE_BOXES.items():
            out.append(Job(f"{model} v1 multipart {name}", features_v1(model, box), False, 422))
            out.append(Job(f"{model} v1 json {name}", features_v1_json(model, box), False, 422))
            out.append(Job(f"{model} v2 {name}", features_v2(manifests[model], [box]), False, 422))
        # case 3's batch: an inverted box beside a normal one
        mixed = [HOSTILE_BOXES["inverted x"], GOOD_BOXES["normal"]]
        out.append(Job(f"{model} v2 inverted + normal", features_v2(manifests[model], mixed), False, 422))
        out.append(
            Job(
                f"{model} v2 index past the images", features_v2(manifests[model], mixed[1:], [1]), False, 422
            )
        )
        for name, box in GOOD_BOXES.items():
            for copy in range(2):
                out.append(Job(f"{model} v1 {name} #{copy}", features_v1(model, box), True))
                out.append(Job(f"{model} v2 {name} #{copy}", features_v2(manifests[model], [box]), True))
    regions = "mtcnn-onet-regions"
    over = OVER_THE_ROI_BUDGET
    says = f"6 boxes have an RoI cost of {6 * 4 * 48 * 48 * 16 * 16}, over the limit of {ROI_BUDGET}"
    for via, send in (
        ("v1 multipart", features_v1_boxes(regions, over)),
        ("v1 json", features_v1_json_boxes(regions, over)),
        ("v2", features_v2(manifests[regions], over)),
    ):
        out.append(Job(f"{regions} {via} over the RoI budget", send, False, 422, says))
    within = [LARGEST] * 4 + [GOOD_BOXES["normal"]]
    out.append(Job(f"{regions} v1 within the RoI budget", features_v1_boxes(regions, within), True))
    out.append(Job(f"{regions} v2 within the RoI budget", features_v2(manifests[regions], within), True))
    for file in digit_files[:12]:
        out.append(Job(f"classify {file.path.name}", classify(file.path.read_bytes()), True))
    return out


def run(server: Server, job: Job) -> Response:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = job.send(http)
        return answer.status_code, answer.content


def assert_same_answer(name: str, alone: bytes, together: bytes) -> None:
    """Equal JSON, floats to float32 rounding (a batch's composition may change the last bits)."""

    def numbers(value: object) -> list[float]:
        if isinstance(value, dict):
            return [n for k in sorted(value) for n in numbers(value[k])]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []

    def strings(value: object) -> object:
        if isinstance(value, dict):
            return {k: strings(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strings(v) for v in value]
        return None if isinstance(value, int | float) else value

    a, b = orjson.loads(alone), orjson.loads(together)
    assert strings(a) == strings(b), name
    np.testing.assert_allclose(numbers(b), numbers(a), rtol=1e-4, atol=1e-5, err_msg=name)


def test_the_corpus_and_hostile_boxes_from_many_clients_leave_good_requests_right(
    server: Server, manifests: dict[str, Manifest], digit_files: list[DigitFile]
) -> None:
    todo = jobs(manifests, corpus_digit(digit_files), digit_files)
    reference = {job.name: run(server, job) for job in todo if job.good}  # sequential, one by one
    for name, (status, body) in reference.items():
        assert status == 200, (name, body[:300])
    shuffled = list(todo)
    random.Random(14).shuffle(shuffled)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda j: run(server, j), shuffled))
    for job, (status, body) in zip(shuffled, answers, strict=True):
        if job.good:
            assert status == 200, (job.name, body[:300])
            assert_same_answer(job.name, reference[job.name][1], body)
        else:
            assert 400 <= status < 500, (job.name, status, body[:300])
            if job.status is not None:
                assert status == job.status, (job.name, status, body[:300])
            if job.says is not None:
                assert job.says in body.decode(), (job.name, body[:300])
    assert server.process.poll() is None, "the server process died"
    assert httpx.get(f"{server.url}/health/ready").status_code == 200


@pytest.mark.parametrize("box", [[0, 0, 20000, 20000], [0, 0, 2000, 2000]], ids=["100x", "10x"])
def test_a_box_far_larger_than_its_image_is_a_422_naming_it(server: Server, box: list[float]) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = features_v1("mtcnn-onet-regions", box)(http)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    assert "boxes[0][0]" in detail and str(float(box[2])) in detail and "reaches past its image" in detail


def test_huge_and_normal_boxes_from_six_clients_at_once(
    server: Server, manifests: dict[str, Manifest]
) -> None:
    normal = features_v1("mtcnn-onet-regions", GOOD_BOXES["normal"])
    huge = features_v1("mtcnn-onet-regions", [0, 0, 40000, 40000])
    huge_v2 = features_v2(manifests["mtcnn-onet-regions"], [[0, 0, 40000, 40000]])
    with httpx.Client(base_url=server.url, timeout=60) as http:
        expected = normal(http).json()

    def client(send: Send) -> list[httpx.Response]:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            return [send(http) for _ in range(5)]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(client, [normal] * 4 + [huge, huge_v2]))
    for answer in [a for r in results[:4] for a in r]:
        assert answer.status_code == 200, answer.text
        assert_same_answer("normal", orjson.dumps(expected), answer.content)
    assert {a.status_code for r in results[4:] for a in r} == {422}
    assert server.process.poll() is None


def test_an_inverted_box_on_v2_is_a_422_in_the_protocol_shape(
    server: Server, manifests: dict[str, Manifest]
) -> None:
    manifest = manifests["mtcnn-onet-regions"]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for boxes in ([HOSTILE_BOXES["inverted x"]], [HOSTILE_BOXES["inverted x"], GOOD_BOXES["normal"]]):
            answer = features_v2(manifest, boxes)(http)
            assert answer.status_code == 422
            assert answer.headers["content-type"] == "application/json"
            assert answer.json() == {
                "error": "input 'boxes' row 0 has x2 < x1 or y2 < y1; expected x1 <= x2 and y1 <= y2"
            }
