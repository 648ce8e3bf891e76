"""The Open Inference Protocol (KServe v2) as the real ``tritonclient[http]`` speaks it, against uvicorn."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from poolserve.repository.manifest import Manifest
from poolserve.service.settings import Settings
from tests.service.conftest import CLASSIFIERS, REGION_MODELS, REPOSITORY, running_server


@pytest.fixture(scope="module")
def triton(server_url: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(urlparse(server_url).netloc)
    yield client
    client.close()


def _images(manifest: Manifest, n: int, seed: int = 0) -> np.ndarray:
    _, c, h, w = manifest.io.image.shape
    assert isinstance(c, int) and isinstance(h, int) and isinstance(w, int)
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def _input(name: str, array: np.ndarray, binary: bool) -> httpclient.InferInput:
    datatype = {np.float32: "FP32", np.int64: "INT64"}[array.dtype.type]
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_server_and_model_readiness(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.get_server_metadata()["name"] == "poolserve"
    for name in CLASSIFIERS + REGION_MODELS:
        assert triton.is_model_ready(name)
        assert triton.is_model_ready(name, "1")
    assert not triton.is_model_ready("no-such-model")


@pytest.mark.parametrize("name", CLASSIFIERS + REGION_MODELS)
def test_model_metadata_and_config(
    triton: httpclient.InferenceServerClient, manifests: dict[str, Manifest], name: str
) -> None:
    io = manifests[name].io
    metadata = triton.get_model_metadata(name)
    image = metadata["inputs"][0]
    assert image == {"name": io.image.name, "datatype": "FP32", "shape": [-1, *io.image.shape[1:]]}
    if io.boxes is not None:
        assert [i["shape"] for i in metadata["inputs"][1:]] == [[-1, 4], [-1]]
        assert metadata["inputs"][2]["datatype"] == "INT64"
    config = triton.get_model_config(name)
    assert config["max_batch_size"] >= 1
    assert [i["name"] for i in config["input"]] == [i["name"] for i in metadata["inputs"]]
    assert [o["name"] for o in config["output"]] == [o["name"] for o in metadata["outputs"]]
    assert "dynamic_batching" in config


@pytest.mark.parametrize("name", [*CLASSIFIERS, *REGION_MODELS])
def test_config_batching_is_the_batching_the_model_runs_with(client: httpx.Client, name: str) -> None:
    config = client.get(f"/v2/models/{name}/config").json()
    info = client.get(f"/v1/models/{name}").json()
    assert config["max_batch_size"] == info["max_batch_size"]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == int(
        info["max_queue_delay_ms"] * 1000
    )


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_infer_equals_in_process(
    triton: httpclient.InferenceServerClient,
    manifests: dict[str, Manifest],
    reference_sessions: dict[str, ort.InferenceSession],
    name: str,
    binary: bool,
) -> None:
    io = manifests[name].io
    assert io.scores is not None
    images = _images(manifests[name], 5)
    result = triton.infer(
        name,
        [_input(io.image.name, images, binary)],
        outputs=[httpclient.InferRequestedOutput(io.scores.name, binary_data=binary)],
    )
    expected = reference_sessions[name].run([io.scores.name], {io.image.name: images})[0]
    got = result.as_numpy(io.scores.name)
    assert got.shape == (5, len(manifests[name].labels))
    # Here and below: the server's session vs an in-process one on the same CPU; batching with other
    # requests changes only last-bit rounding, a wrong tensor layout or dtype changes whole values.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("name", REGION_MODELS)
def test_region_infer_with_boxes_equals_in_process(
    triton: httpclient.InferenceServerClient,
    manifests: dict[str, Manifest],
    reference_sessions: dict[str, ort.InferenceSession],
    name: str,
    binary: bool,
) -> None:
    io = manifests[name].io
    assert io.boxes is not None and io.box_batch_indices is not None and io.features is not None
    images = _images(manifests[name], 3, seed=1)
    boxes = np.array([[10, 10, 60, 70], [0, 0, 112, 112], [30, 5, 50, 100], [5, 40, 90, 90]], np.float32)
    indices = np.array([2, 0, 2, 1], np.int64)  # not sorted by image: rows must come back in this order
    outputs = [io.features.name] + ([io.scores.name] if io.scores else [])
    result = triton.infer(
        name,
        [
            _input(io.image.name, images, binary),
            _input(io.boxes.name, boxes, binary),
            _input(io.box_batch_indices.name, indices, binary),
        ],
    )
    feeds = {io.image.name: images, io.boxes.name: boxes, io.box_batch_indices.name: indices}
    for out, want in zip(outputs, reference_sessions[name].run(outputs, feeds), strict=True):
        np.testing.assert_allclose(result.as_numpy(out), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CLASSIFIERS[:1])
def test_concurrent_requests_batch_and_each_get_their_own(
    triton: httpclient.InferenceServerClient,
    manifests: dict[str, Manifest],
    reference_sessions: dict[str, ort.InferenceSession],
    name: str,
) -> None:
    io = manifests[name].io
    assert io.scores is not None
    batches = [_images(manifests[name], n, seed=n) for n in (1, 2, 3, 4)]
    pending = [triton.async_infer(name, [_input(io.image.name, b, True)]) for b in batches]
    for images, job in zip(batches, pending, strict=True):
        want = reference_sessions[name].run([io.scores.name], {io.image.name: images})[0]
        np.testing.assert_allclose(job.get_result().as_numpy(io.scores.name), want, rtol=1e-5, atol=1e-5)


def test_gzip_request_and_raw_mode(
    server_url: str, manifests: dict[str, Manifest], reference_sessions: dict[str, ort.InferenceSession]
) -> None:
    name = CLASSIFIERS[0]
    io = manifests[name].io
    assert io.scores is not None
    images = _images(manifests[name], 2, seed=7)
    want = reference_sessions[name].run([io.scores.name], {io.image.name: images})[0]
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": io.image.name,
                    "shape": list(images.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": images.nbytes},
                }
            ]
        }
    )
    url = f"{server_url}/v2/models/{name}/infer"
    zipped = httpx.post(
        url,
        content=gzip.compress(header + images.tobytes()),
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Encoding": "gzip"},
    )
    assert zipped.status_code == 200, zipped.text
    got = np.asarray(zipped.json()["outputs"][0]["data"], np.float32).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    raw = httpx.post(url, content=images.tobytes(), headers={"Inference-Header-Content-Length": "0"})
    assert raw.status_code == 200, raw.text
    np.testing.assert_allclose(
        np.asarray(raw.json()["outputs"][0]["data"], np.float32).reshape(want.shape),
        want,
        rtol=1e-5,
        atol=1e-5,
    )


def _fails(call: object, status: str, fragment: str) -> None:
    with pytest.raises(InferenceServerException) as caught:
        call()  # type: ignore[operator]
    assert caught.value.status() == status
    assert fragment in caught.value.message()


def test_errors(triton: httpclient.InferenceServerClient, manifests: dict[str, Manifest]) -> None:
    name = CLASSIFIERS[0]
    io = manifests[name].io
    good = _images(manifests[name], 1)
    _fails(lambda: triton.infer("no-such-model", [_input(io.image.name, good, True)]), "404", "no model")
    _fails(lambda: triton.get_model_metadata(name, "7"), "404", "no version")
    wrong_shape = np.zeros((1, 1, 27, 28), np.float32)
    _fails(lambda: triton.infer(name, [_input(io.image.name, wrong_shape, True)]), "400", "shape")
    wrong_type = good.astype(np.float64)
    tensor = httpclient.InferInput(io.image.name, list(good.shape), "FP64")
    tensor.set_data_from_numpy(wrong_type)
    _fails(lambda: triton.infer(name, [tensor]), "400", "datatype")
    _fails(lambda: triton.infer(name, [_input("nope", good, False)]), "400", "unknown input")


@pytest.mark.parametrize(
    ("headers", "body", "fragment"),
    [
        ({"Inference-Header-Content-Length": "999"}, b"{}", "outside"),
        ({}, b"not json", "the body is not valid JSON (invalid literal"),
        ({}, b'{"inputs": NaN}', "the body is not valid JSON (unexpected character"),
        ({"Inference-Header-Content-Length": "3"}, b"abcdef", "the JSON header (the body's first 3 bytes"),
        ({"Content-Encoding": "gzip"}, b"not gzip", "gzip"),
        ({"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage", "cut short"),
        ({"Content-Encoding": "gzip"}, gzip.compress(b'{"inputs": []}')[:-8], "cut short"),
        ({"Content-Encoding": "gzip"}, gzip.compress(b'{"inputs": []}') + b"xx", "bytes follow"),
    ],
)
def test_malformed_bodies_get_protocol_errors(
    client: httpx.Client, headers: dict[str, str], body: bytes, fragment: str
) -> None:
    response = client.post(f"/v2/models/{CLASSIFIERS[0]}/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_binary_body_mistakes_are_named(client: httpx.Client, manifests: dict[str, Manifest]) -> None:
    name = CLASSIFIERS[0]
    pixels = np.zeros((1, 1, 28, 28), np.float32).tobytes()
    tensor = {"name": manifests[name].io.image.name, "shape": [1, 1, 28, 28], "datatype": "FP32"}

    def send(spec: dict[str, Any], with_length: bool = True) -> str:
        header = orjson.dumps({"inputs": [spec]})
        headers = {"Inference-Header-Content-Length": str(len(header))} if with_length else {}
        response = client.post(f"/v2/models/{name}/infer", content=header + pixels, headers=headers)
        assert response.status_code == 400, response.text
        return str(response.json()["error"])

    sized = {**tensor, "parameters": {"binary_data_size": len(pixels)}}
    assert "needs the Inference-Header-Content-Length header" in send(sized, with_length=False)
    assert "binary_data_size 3136.0 is not a byte count" in send(
        {**tensor, "parameters": {"binary_data_size": 3136.0}}
    )
    assert "gives both 'data' and parameters.binary_data_size" in send({**sized, "data": [0.0] * 784})


def test_an_output_requested_twice_is_refused(client: httpx.Client, manifests: dict[str, Manifest]) -> None:
    """Each copy would be encoded in full: 20,000 copies made a 257 MB answer of a 550 kB request."""
    name = CLASSIFIERS[0]
    io = manifests[name].io
    assert io.scores is not None
    image = {"name": io.image.name, "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 784}
    outputs = [{"name": io.scores.name}] * 2
    response = client.post(f"/v2/models/{name}/infer", json={"inputs": [image], "outputs": outputs})
    assert (
        response.status_code == 400
        and f"output '{io.scores.name}' requested twice" in response.json()["error"]
    )


def _json_infer(client: httpx.Client, name: str, inputs: list[dict[str, Any]]) -> httpx.Response:
    return client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(None, "holds nulls"), ("0.5", "holds strings"), (True, "holds booleans"), ([0.5], "unequal")],
)
def test_json_data_must_hold_numbers_of_the_datatype(
    client: httpx.Client, manifests: dict[str, Manifest], value: object, fragment: str
) -> None:
    """numpy would read these as numbers (null as NaN, "0.5" and true as values): a client's bug answered
    as data. One bad value among good ones is enough to refuse the tensor."""
    name = CLASSIFIERS[0]
    data: list[object] = [0.0] * 784
    data[100] = value
    image = {"name": manifests[name].io.image.name, "shape": [1, 1, 28, 28], "datatype": "FP32", "data": data}
    response = _json_infer(client, name, [image])
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"] and "FP32" in response.json()["error"]
    data[100] = 1  # an integer is a number: accepted as FP32
    assert _json_infer(client, name, [image]).status_code == 200


def _nested(depth: int) -> list[Any]:
    data: list[Any] = [0.0]
    for _ in range(depth - 1):
        data = [data]
    return data


@pytest.mark.parametrize(
    ("shape", "data", "fragment"),
    [
        ([1] * 65, [0.0], "'shape' has 65 dimensions; at most 32"),
        ([1] * 33, [0.0], "'shape' has 33 dimensions; at most 32"),
        ([1, 1, 28, 28], _nested(33), "'data' nests lists more than 32 deep"),
        ([1, 1, 28, 28], _nested(200), "'data' nests lists more than 32 deep"),
        ([1, 1, 28, 28], [1e300] * 784, "'data' holds numbers beyond FP32's range"),
    ],
    ids=["65-dims", "33-dims", "33-deep", "200-deep", "past-fp32"],
)
def test_shapes_and_data_numpy_cannot_hold_are_400s_not_500s(
    client: httpx.Client, manifests: dict[str, Manifest], shape: list[int], data: list[Any], fragment: str
) -> None:
    name = CLASSIFIERS[0]
    image = {"name": manifests[name].io.image.name, "shape": shape, "datatype": "FP32", "data": data}
    body = orjson.dumps({"inputs": [image]})  # nests deeper than the json module writes
    response = client.post(
        f"/v2/models/{name}/infer", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    binary = {**image, "parameters": {"binary_data_size": 4}}
    del binary["data"]
    header = orjson.dumps({"inputs": [binary]})
    body = header + np.zeros(1, np.float32).tobytes()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    response = client.post(f"/v2/models/{name}/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text


def test_a_non_finite_image_a_classification_request_and_a_numeric_id_are_refused(
    client: httpx.Client, manifests: dict[str, Manifest]
) -> None:
    name = CLASSIFIERS[0]
    io = manifests[name].io
    pixels = np.zeros((1, 1, 28, 28), np.float32)
    pixels[0, 0, 3, 3] = np.nan
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": io.image.name,
                    "shape": [1, 1, 28, 28],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": pixels.nbytes},
                }
            ]
        }
    )
    response = client.post(
        f"/v2/models/{name}/infer",
        content=header + pixels.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400 and "holds NaN or infinity" in response.json()["error"], response.text
    image = {"name": io.image.name, "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 784}
    assert io.scores is not None
    ranked = {"name": io.scores.name, "parameters": {"classification": 3}}
    response = client.post(f"/v2/models/{name}/infer", json={"inputs": [image], "outputs": [ranked]})
    assert (
        response.status_code == 400
        and "classification extension is not supported" in response.json()["error"]
    )
    response = client.post(f"/v2/models/{name}/infer", json={"id": 5, "inputs": [image]})
    assert response.status_code == 400 and "'id' must be a string" in response.json()["error"]
    response = client.post(f"/v2/models/{name}/infer", json={"id": "5", "inputs": [image]})
    assert response.status_code == 200 and response.json()["id"] == "5"


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (0.7, "fractional numbers; INT64 takes integers"),
        (2.0, "numbers written with a decimal point or an exponent (2.0, 1e3); INT64 takes integers"),
        (2**64, "integers outside INT64's range; INT64 takes integers"),
        (-(2**63) - 1, "integers outside INT64's range; INT64 takes integers"),
        (2**63, "integers outside INT64's range [-9223372036854775808, 9223372036854775807]"),
    ],
)
def test_json_integers_are_not_truncated_from_fractions(
    client: httpx.Client, manifests: dict[str, Manifest], index: float, reason: str
) -> None:
    name = REGION_MODELS[0]
    io = manifests[name].io
    assert io.boxes is not None and io.box_batch_indices is not None
    _, c, h, w = io.image.shape
    assert isinstance(c, int) and isinstance(h, int) and isinstance(w, int)
    image = {"name": io.image.name, "shape": [1, c, h, w], "datatype": "FP32", "data": [0.0] * (c * h * w)}
    boxes = {"name": io.boxes.name, "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 8, 8]}
    indices = {"name": io.box_batch_indices.name, "shape": [1], "datatype": "INT64", "data": [index]}
    response = _json_infer(client, name, [image, boxes, indices])
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    indices["data"] = [0]
    assert _json_infer(client, name, [image, boxes, indices]).status_code == 200


@pytest.mark.parametrize("shape", [[1, 3, 0, 10], [1, 3, 10, 0], [1, 3, 0, 0]])
def test_an_empty_image_dimension_is_refused_before_the_session(
    client: httpx.Client, shape: list[int]
) -> None:
    """A model whose height and width vary takes any size; zero is no size, and onnxruntime fails on it."""
    name = "ppocr-textline-orientation"
    if not (REPOSITORY / name).is_dir():
        pytest.skip(f"{name} is not in the repository")
    response = _json_infer(client, name, [{"name": "x", "shape": shape, "datatype": "FP32", "data": []}])
    assert response.status_code == 400, response.text
    assert "empty dimension" in response.json()["error"]


def test_byte_count_must_match_shape(client: httpx.Client, manifests: dict[str, Manifest]) -> None:
    name = CLASSIFIERS[0]
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": manifests[name].io.image.name,
                    "shape": [1, 1, 28, 28],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    )
    response = client.post(
        f"/v2/models/{name}/infer",
        content=header + bytes(16),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert "needs 3136" in response.json()["error"]


def test_v1_errors_stay_problem_json(client: httpx.Client) -> None:
    response = client.get("/v1/models/no-such-model")
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/v2/models/no-such-model").json() == {"error": "no model named 'no-such-model'"}


def test_limits_and_unrouted_paths_answer_in_protocol_shape(client: httpx.Client) -> None:
    unrouted = client.get("/v2/no/such/path")
    assert unrouted.status_code == 404 and "error" in unrouted.json()


def test_body_limit_answers_413_in_protocol_shape() -> None:
    settings = Settings(repository=REPOSITORY, max_body_bytes=4096)
    with running_server(settings) as url:
        declared = httpx.post(f"{url}/v2/models/{CLASSIFIERS[0]}/infer", content=bytes(8192))
        assert declared.status_code == 413
        assert "exceeds 4096 bytes" in declared.json()["error"]
        bomb = gzip.compress(bytes(1 << 20))
        inflated = httpx.post(
            f"{url}/v2/models/{CLASSIFIERS[0]}/infer", content=bomb, headers={"Content-Encoding": "gzip"}
        )
        assert inflated.status_code == 413
        assert "decompressed" in inflated.json()["error"]
        assert httpx.get(f"{url}/v1/models/nope").headers["content-type"] == "application/problem+json"


def test_v2_shares_the_api_key(manifests: dict[str, Manifest]) -> None:
    name = CLASSIFIERS[0]
    images = _images(manifests[name], 1)
    with running_server(Settings(repository=REPOSITORY, api_key="sesame")) as url:
        client = httpclient.InferenceServerClient(urlparse(url).netloc)
        try:
            assert client.is_server_ready()  # probes exempt, as /health
            _fails(lambda: client.get_model_metadata(name), "401", "API key")
            keyed = client.infer(
                name,
                [_input(manifests[name].io.image.name, images, True)],
                headers={"Authorization": "Bearer sesame"},
            )
            assert keyed.as_numpy(manifests[name].io.scores.name).shape == (1, len(manifests[name].labels))  # type: ignore[union-attr]
        finally:
            client.close()
