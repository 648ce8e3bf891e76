"""The shipped models on onnxruntime's CUDA provider: where their nodes land and that they answer as on
the CPU. Marked ``gpu``: skipped where onnxruntime offers no CUDA provider (CI, most laptops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.gpu_roi import CPU, CUDA, QUICK, graph, placement
from poolserve.export.parity import random_boxes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="onnxruntime has no CUDA provider"),
]
# CUDA kernels sum in another order than the CPU's (measured: up to 1.5e-5 on random data).
TOLERANCE = 1e-4


def _sessions(name: str) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    path = str(ROOT / "model_repository" / name / "1" / "model.onnx")
    return (
        ort.InferenceSession(path, providers=[CUDA, CPU]),
        ort.InferenceSession(path, providers=[CPU]),
    )


@pytest.mark.parametrize("name", ["lenet5-mnist", "lenet5-gap-mnist"])
def test_classifiers_run_on_cuda_like_on_cpu(name: str):
    cuda, cpu = _sessions(name)
    assert cuda.get_providers()[0] == CUDA
    images = np.random.default_rng(0).standard_normal((7, 1, 28, 28)).astype(np.float32)
    (got,), (want,) = cuda.run(None, {"images": images}), cpu.run(None, {"images": images})
    assert np.abs(got - want).max() <= TOLERANCE


@pytest.mark.parametrize("name", ["digits-roialign", "digits-roipool"])
def test_region_models_run_on_cuda_like_on_cpu(name: str):
    cuda, cpu = _sessions(name)
    rng = np.random.default_rng(1)
    images = rng.standard_normal((3, 1, 112, 112)).astype(np.float32)
    boxes, indices = random_boxes(rng, 50, 3, 112)
    feeds = {"images": images, "boxes": boxes, "box_batch_indices": indices}
    for got, want in zip(cuda.run(None, feeds), cpu.run(None, feeds), strict=True):
        assert np.abs(got - want).max() <= TOLERANCE


def test_roialign_lands_on_cuda_and_max_roi_pool_on_cpu():
    """onnxruntime's operator table: RoiAlign has a CUDA kernel, MaxRoiPool a CPU one only; the
    standard-op rewrite of MaxRoiPool runs on CUDA (a few shape ops may stay on the CPU)."""
    rng = np.random.default_rng(2)
    maps = rng.standard_normal((QUICK.images, QUICK.channels, QUICK.size, QUICK.size)).astype(np.float32)
    boxes, indices = random_boxes(rng, QUICK.boxes, QUICK.images, QUICK.size)
    align = {"maps": maps, "boxes": boxes, "box_batch_indices": indices}
    pool = {"maps": maps, "rois": np.concatenate([indices[:, None], boxes], 1).astype(np.float32)}
    assert placement(graph("RoiAlign", QUICK), [CUDA, CPU], align) == {CUDA: 1}
    assert placement(graph("MaxRoiPool", QUICK), [CUDA, CPU], pool) == {CPU: 1}
    rewrite = placement(graph("RoIPool rewrite", QUICK), [CUDA, CPU], pool)
    assert rewrite.get(CUDA, 0) > rewrite.get(CPU, 0)
