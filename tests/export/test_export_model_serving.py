"""Bring your own model, end to end: a model file in a temp dir, `poolserve export-model`, a real
`poolserve serve` on that repository; /v1 and /v2 answer, and /v2's outputs equal PyTorch eager."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import torch
from PIL import Image

from poolserve.export.user_loading import build_module, load_factory
from tests.conftest import server_environment
from tests.service.conftest import ROOT, wait_until_ready
from tests.service.test_cli import free_port

# Served onnxruntime outputs against eager PyTorch in this process: a parity comparison, so it runs again
# under another oneDNN ISA (make parity-isa). 1e-5 on unit-scale outputs of small random-weight models:
# float32 reassociation across kernels stays near 1e-7, a wrong op or preprocessing step differs by ~1.
pytestmark = pytest.mark.parity

MODEL_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn
    import torch.nn.functional as F
    from poolserve.ops import RoIAlign, RoIPool


    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # 28 -> 14
            self.pool2 = nn.AvgPool2d(2, divisor_override=3)  # 14 -> 7
            self.pool3 = nn.AdaptiveAvgPool2d(3)  # 7 -> 3: uneven bins
            self.head = nn.Linear(8 * 3 * 3, 4)

        def forward(self, images):
            x = self.pool2(self.pool1(F.relu(self.conv(images))))
            return self.head(self.pool3(x).flatten(1))


    class Regions(nn.Module):
        def __init__(self, roi):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.roi = roi
            self.embed = nn.Linear(8 * 4 * 4, 16)
            self.classify = nn.Linear(16, 3)

        def forward(self, images, boxes, box_batch_indices):
            maps = self.backbone(images)
            # torchvision's (K, 5) form, as code written for torchvision.ops builds it
            rois = torch.cat([box_batch_indices.to(boxes.dtype)[:, None], boxes], dim=1)
            features = F.relu(self.embed(self.roi(maps, rois).flatten(1)))
            return features, self.classify(features)


    def classifier():
        torch.manual_seed(1)
        return Classifier()


    def regions_align():
        torch.manual_seed(2)
        return Regions(RoIAlign(4, spatial_scale=0.5, sampling_ratio=2, aligned=True))


    def regions_pool():
        torch.manual_seed(3)
        return Regions(RoIPool((4, 4), 0.5))
    """
)
MODELS = {
    "byo-classifier": ("classifier", "classification", "3x28x28"),
    "byo-roialign": ("regions_align", "region-features", "3x32x32"),
    "byo-roipool": ("regions_pool", "region-features", "3x32x32"),
}


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.nn.Module]]:
    """The model file and its weights in a temp dir, each model exported by the real CLI."""
    work = tmp_path_factory.mktemp("byo")
    (work / "net.py").write_text(MODEL_FILE)
    repository = work / "repository"
    modules = {}
    for name, (factory, task, shape) in MODELS.items():
        target = f"{work / 'net.py'}:{factory}"
        module = build_module(load_factory(target), target)
        torch.save(module.state_dict(), work / f"{name}.pt")
        modules[name] = module.eval()
        command = [
            sys.executable,
            "-m",
            "poolserve",
            "export-model",
            target,
            "--weights",
            str(work / f"{name}.pt"),
        ]
        command += ["--name", name, "--task", task, "--input", shape, "--repository", str(repository)]
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    return repository, modules


@pytest.fixture(scope="module")
def server(exported: tuple[Path, dict[str, torch.nn.Module]]) -> Iterator[str]:
    repository, _ = exported
    port = free_port()
    env = server_environment()
    command = [
        sys.executable,
        "-m",
        "poolserve",
        "serve",
        "--port",
        str(port),
        "--repository",
        str(repository),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_ready(process, port, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _tensor(photo: np.ndarray) -> torch.Tensor:
    """The service's preprocessing for these manifests: RGB, pixel / 255, mean 0, std 1, NCHW."""
    scaled = photo.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)
    return torch.from_numpy(scaled[None].copy())


def _infer(url: str, name: str, inputs: list[tuple[str, str, np.ndarray]]) -> dict[str, np.ndarray]:
    body = {
        "inputs": [
            {"name": n, "shape": list(a.shape), "datatype": dtype, "data": a.ravel().tolist()}
            for n, dtype, a in inputs
        ]
    }
    response = httpx.post(f"{url}/v2/models/{name}/infer", content=orjson.dumps(body), timeout=30)
    assert response.status_code == 200, response.text
    return {
        o["name"]: np.asarray(o["data"], np.float32).reshape(o["shape"]) for o in response.json()["outputs"]
    }


def test_classifier_answers_v1_and_v2_like_eager(
    server: str, exported: tuple[Path, dict[str, torch.nn.Module]]
):
    module = exported[1]["byo-classifier"]
    rng = np.random.default_rng(0)
    images = rng.standard_normal((3, 3, 28, 28)).astype(np.float32)
    logits = _infer(server, "byo-classifier", [("images", "FP32", images)])["logits"]
    with torch.no_grad():
        want = module(torch.from_numpy(images)).numpy()
    assert logits.shape == (3, 4)
    assert np.abs(logits - want).max() <= 1e-5

    photo = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)  # the input size: no resize
    response = httpx.post(
        f"{server}/v1/models/byo-classifier/classify", files=[("images", ("a.png", _png(photo), "image/png"))]
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["results"][0]["predictions"]
    with torch.no_grad():
        want = torch.softmax(module(_tensor(photo)), dim=1)[0].numpy()
    assert [p["index"] for p in predictions] == list(np.argsort(-want))
    assert all(abs(p["score"] - want[p["index"]]) <= 1e-5 for p in predictions)


@pytest.mark.parametrize("name", ["byo-roialign", "byo-roipool"])
def test_region_model_answers_v1_and_v2_like_eager(
    server: str, exported: tuple[Path, dict[str, torch.nn.Module]], name: str
):
    module = exported[1][name]
    rng = np.random.default_rng(1)
    images = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    boxes = np.array([[1.5, 2.0, 20.0, 30.0], [0, 0, 32, 32], [10.2, 4.7, 15.1, 9.9]], np.float32)
    indices = np.array([0, 1, 1], np.int64)
    got = _infer(
        server,
        name,
        [("images", "FP32", images), ("boxes", "FP32", boxes), ("box_batch_indices", "INT64", indices)],
    )
    with torch.no_grad():
        features, logits = module(*(torch.from_numpy(a) for a in (images, boxes, indices)))
    assert np.abs(got["features"] - features.numpy()).max() <= 1e-5
    assert np.abs(got["logits"] - logits.numpy()).max() <= 1e-5

    photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    response = httpx.post(
        f"{server}/v1/models/{name}/features",
        files=[("images", ("a.png", _png(photo), "image/png"))],
        data={"boxes": "[[[2, 2, 20, 24], [0, 0, 32, 32]]]"},
    )
    assert response.status_code == 200, response.text
    answered = response.json()["results"][0]["boxes"]
    with torch.no_grad():
        want, _ = module(
            _tensor(photo), torch.tensor([[2.0, 2, 20, 24], [0, 0, 32, 32]]), torch.tensor([0, 0])
        )
    assert len(answered) == 2
    for box, row in zip(answered, want.numpy(), strict=True):
        assert np.abs(np.asarray(box["features"], np.float32) - row).max() <= 1e-5


def test_pooling_audit_is_in_the_manifest_and_the_api(server: str):
    audit = httpx.get(f"{server}/v1/models/byo-classifier").json()["pooling"]
    assert [(layer["path"], layer["op"], layer["export"]) for layer in audit] == [
        ("pool1", "MaxPool2d", "native"),
        ("pool2", "AvgPool2d", "rewritten"),
        ("pool3", "AdaptiveAvgPool2d", "rewritten"),
    ]
    assert audit[1]["parameters"]["divisor_override"] == 3
    assert audit[2]["input_shape"][-2:] == [7, 7]
    region = httpx.get(f"{server}/v1/models/byo-roialign").json()
    assert region["roi"]["op"] == "RoiAlign" and region["roi"]["aligned"] is True
    assert httpx.get(f"{server}/v1/models/byo-roipool").json()["roi"]["op"] == "MaxRoiPool"
