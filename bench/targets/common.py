"""Decode and preprocess exactly as a poolserve manifest says, with numpy and Pillow only.

Every comparison server (bare endpoint, naive torch, the four peers) calls these, so they all do the
same per-image work as poolserve before inference. The manifest is read as plain JSON: the peer
virtualenvs do not have poolserve's pydantic schema installed.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

_INTERPOLATION = {
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class ServedModel:
    """What a comparison server needs from one repository entry."""

    name: str
    model_path: Path
    manifest: dict[str, Any]

    @property
    def input_name(self) -> str:
        return str(self.manifest["io"]["image"]["name"])

    @property
    def output_name(self) -> str:
        return str(self.manifest["io"]["scores"]["name"])

    @property
    def max_batch_size(self) -> int:
        return int(self.manifest.get("batching", {}).get("max_batch_size", 32))

    @property
    def max_queue_delay_ms(self) -> float:
        return float(self.manifest.get("batching", {}).get("max_queue_delay_ms", 2.0))


def load_served_model(entry_dir: Path) -> ServedModel:
    manifest = json.loads((entry_dir / "manifest.json").read_text())
    return ServedModel(manifest["name"], entry_dir / manifest.get("model_file", "model.onnx"), manifest)


def served_model_from_env() -> ServedModel:
    """The entry named by ``BENCH_ENTRY`` (a ``<repo>/<name>/<version>`` folder): peers take no CLI args."""
    return load_served_model(Path(os.environ["BENCH_ENTRY"]))


def preprocess(data: bytes, manifest: dict[str, Any]) -> NDArray[np.float32]:
    """Image bytes -> (C, H, W) float32, in the manifest's order: decode, EXIF, colour, resize, normalize."""
    spec = manifest["preprocessing"]
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    mode = "RGB" if spec["color_mode"] == "BGR" else spec["color_mode"]
    image = image.convert(mode)
    size = (int(spec["width"]), int(spec["height"]))
    if image.size != size:
        image = image.resize(size, _INTERPOLATION[spec.get("interpolation", "bilinear")])
    pixels = np.asarray(image, dtype=np.float32) * np.float32(spec.get("scale", 1.0 / 255.0))
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec["color_mode"] == "BGR":
        pixels = pixels[:, :, ::-1]
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def make_session(model_path: Path) -> Any:
    """One onnxruntime session, one intra-op thread: each server gets one core in this benchmark."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("BENCH_ORT_THREADS", "1"))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def classify_response(scores: NDArray[np.float32], labels: list[str]) -> list[dict[str, Any]]:
    """Top-1 label and score per image: the same small answer every server returns."""
    best = scores.argmax(axis=1)
    return [
        {"label": labels[int(i)], "score": float(row[int(i)])} for i, row in zip(best, scores, strict=True)
    ]
