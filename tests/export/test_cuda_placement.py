"""Where the RoI ops land on onnxruntime's CUDA provider (the shipped models' CUDA-vs-CPU answers are
tests/service/runtime/test_cuda_parity.py). Marked ``gpu``: skipped where onnxruntime offers no CUDA
provider (CI, most laptops)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from bench.gpu_roi import CPU, CUDA, QUICK, graph, placement
from poolserve.export.parity import random_boxes

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="onnxruntime has no CUDA provider"),
]


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
