"""export-model --quantize: a user's model file, quantized end to end, read back through the repository
store into an onnxruntime session and served by the real service; refusals when there are no real
images to judge it on."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import typer
from typer.testing import CliRunner

from poolserve.export.export_model_command import export_model_command
from poolserve.export.user_loading import load_samples
from poolserve.repository.manifest import Manifest
from poolserve.repository.store import discover, read_manifest, verified_model_path
from poolserve.service.settings import Settings
from tests.service.conftest import running_server

DIGITS = Path(__file__).resolve().parents[1] / "data" / "digits"
# The floor this test holds the int8 graph to on real digits; the export itself refuses below 95 %.
AGREEMENT_FLOOR = 0.95

MODEL_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn
    from poolserve.ops import RoIAlign


    class Digits(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            )
            self.head = nn.Linear(16 * 2 * 2, 10)

        def forward(self, images):
            return self.head(self.features(images).flatten(1))


    class Regions(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.roi = RoIAlign(4, spatial_scale=0.5, sampling_ratio=2, aligned=True)
            self.embed = nn.Linear(8 * 4 * 4, 16)
            self.classify = nn.Linear(16, 3)

        def forward(self, images, boxes, box_batch_indices):
            rois = torch.cat([box_batch_indices.to(boxes.dtype)[:, None], boxes], dim=1)
            features = torch.relu(self.embed(self.roi(self.backbone(images), rois).flatten(1)))
            return features, self.classify(features)


    def digits():
        torch.manual_seed(5)
        return Digits()


    def regions():
        torch.manual_seed(6)
        return Regions()
    """
)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model file, and the shipped sample digits split in two: calibration (0-4 of each class) and
    samples (5-9), so agreement is measured on images the calibration never saw."""
    root = tmp_path_factory.mktemp("quantize")
    (root / "net.py").write_text(MODEL_FILE)
    for folder, keep in (("calibration", range(5)), ("samples", range(5, 10))):
        (root / folder).mkdir()
        for path in DIGITS.glob("*.png"):
            if int(path.stem.split("_")[1]) % 10 in keep:
                shutil.copy(path, root / folder / path.name)
    return root


def _export(work: Path, *arguments: str) -> tuple[int, str]:
    """The command as ``poolserve export-model`` registers it, run in-process (output and errors)."""
    app = typer.Typer()
    app.command()(export_model_command)
    repository = [] if "--repository" in arguments else ["--repository", str(work / "repo")]
    result = CliRunner().invoke(app, [*arguments, *repository])
    return result.exit_code, result.output


def _entry(work: Path, name: str) -> tuple[Manifest, Path]:
    (location,) = [e for e in discover(work / "repo") if e.name == name]
    manifest = read_manifest(location)
    return manifest, verified_model_path(location, manifest)


@pytest.fixture(scope="module")
def classifier_output(work: Path) -> str:
    """The float32 entry and its int8 twin from the same model file; the int8 command's output."""
    common = [f"{work / 'net.py'}:digits", "--input", "1x28x28", "--samples", str(work / "samples")]
    code, output = _export(work, *common, "--name", "digits-f32")
    assert code == 0, output
    calibration = ["--calibration", str(work / "calibration")]
    code, output = _export(work, *common, "--name", "digits-int8", "--quantize", "int8", *calibration)
    assert code == 0, output
    return output


def test_int8_classifier_entry_loads_and_agrees_with_float32(work: Path, classifier_output: str):
    assert "int8: top-1 agreement with float32" in classifier_output
    manifest, path = _entry(work, "digits-int8")
    float_manifest, float_path = _entry(work, "digits-f32")
    quantization = manifest.quantization
    assert quantization is not None and quantization.mode == "int8"
    assert quantization.float32_sha256 == float_manifest.sha256  # derived from the very graph written
    assert quantization.calibration == "50 images in calibration/" and quantization.calibration_samples == 50
    assert quantization.compared_on == "50 images in samples/"
    assert quantization.top1_agreement is not None and quantization.top1_agreement >= AGREEMENT_FLOOR
    assert quantization.agreement_floor == 0.95
    assert manifest.verification.reference.startswith(f"float32 graph sha256 {float_manifest.sha256[:12]}")
    assert manifest.verification.max_abs_error <= manifest.verification.tolerance
    assert manifest.pooling is not None and len(manifest.pooling) == 2

    graph = onnx.load(path)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.graph.node}
    images = load_samples(work / "samples", manifest.preprocessing)
    int8 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    float32 = ort.InferenceSession(str(float_path), providers=["CPUExecutionProvider"])
    (got,) = int8.run(["logits"], {"images": images})
    (want,) = float32.run(["logits"], {"images": images})
    assert got.dtype == np.float32 and got.shape == want.shape == (50, 10)
    assert float(np.mean(got.argmax(1) == want.argmax(1))) == pytest.approx(quantization.top1_agreement)


@pytest.mark.parametrize("mode", ["int8", "fp16"])
def test_region_model_keeps_roi_and_boxes_float32(work: Path, mode: str):
    code, output = _export(
        work,
        f"{work / 'net.py'}:regions",
        "--name",
        f"regions-{mode}",
        "--task",
        "region-features",
        "--input",
        "1x28x28",
        "--quantize",
        mode,
        "--calibration",
        str(work / "calibration"),
    )
    assert code == 0, output
    manifest, path = _entry(work, f"regions-{mode}")
    assert manifest.quantization is not None
    assert "samples" in manifest.quantization.compared_on  # no --samples: says it compared on calibration
    graph = onnx.load(path).graph
    kept = set(manifest.quantization.kept_float32)
    (roi,) = [n for n in graph.node if n.op_type == "RoiAlign"]
    assert roi.name in kept
    # Nothing between the box inputs and the RoI op quantizes, dequantizes or halves a coordinate.
    halving = {"QuantizeLinear", "DequantizeLinear"}
    producers = {out: n for n in graph.node for out in n.output}
    frontier, seen, to_float = list(roi.input[1:]), set(), set()
    while frontier:
        node = producers.get(frontier.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        assert node.op_type not in halving, node.name
        to = [a.i for a in node.attribute if a.name == "to"]
        assert not (node.op_type == "Cast" and to == [onnx.TensorProto.FLOAT16]), node.name
        if node.op_type == "Cast" and to == [onnx.TensorProto.FLOAT]:
            to_float.add(node.name)  # the fp16 converter's casts back: exact on float32 inputs
        frontier += list(node.input)
    assert seen and seen - to_float <= kept


def test_int8_entry_is_served_by_the_service(work: Path, classifier_output: str):
    """The real service loads the quantized entry and answers what the int8 graph computes."""
    manifest, path = _entry(work, "digits-int8")
    images = load_samples(work / "samples", manifest.preprocessing)
    (logits,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"images": images}
    )
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in sorted((work / "samples").iterdir())]
    with running_server(Settings(repository=work / "repo")) as url:
        response = httpx.post(f"{url}/v1/models/digits-int8/classify", params={"top_k": 1}, files=files)
    assert response.status_code == 200, response.text
    served = [result["predictions"][0]["index"] for result in response.json()["results"]]
    assert served == logits.argmax(1).tolist()


@pytest.mark.parametrize("mode", ["int8", "fp16"])
def test_quantizing_without_real_images_is_refused_before_export(work: Path, mode: str):
    command = [f"{work / 'net.py'}:digits", "--name", f"refused-{mode}", "--input", "1x28x28"]
    code, output = _export(work, *command, "--quantize", mode, "--repository", str(work / "refused"))
    assert code == 1
    assert output.strip().splitlines() == [
        f"export-model: --quantize {mode} needs real images to "
        + ("calibrate int8 ranges and measure" if mode == "int8" else "measure")
        + " agreement with float32: pass --calibration DIR (training images, never your test set) "
        "and/or --samples DIR"
    ]
    assert not (work / "refused").exists()
