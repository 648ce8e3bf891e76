"""RoiAlign vs MaxRoiPool vs the exact standard-op RoIPool rewrite, on one execution provider.

Each op is a one-node graph (the rewrite: that node replaced by ``bench.roipool_rewrite``) over an
(N, C, H, W) float32 map and K boxes. Per op: where onnxruntime placed every node (from its profile, not
from the provider list we asked for), the median milliseconds per run with host arrays (copies included)
and with I/O binding (map and boxes already on the device, output left there), and the largest difference
from the CPU provider's output.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from bench.roipool_rewrite import rewrite_max_roi_pool

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class RoIShape:
    images: int
    channels: int
    size: int
    boxes: int
    pooled: int = 7


FULL = RoIShape(8, 16, 56, 256)
QUICK = RoIShape(2, 4, 16, 8)


def graph(op: str, shape: RoIShape) -> onnx.ModelProto:
    maps = helper.make_tensor_value_info(
        "maps", TensorProto.FLOAT, [None, shape.channels, shape.size, shape.size]
    )
    pooled = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, None)
    if op == "RoiAlign":
        inputs = [
            maps,
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [None, 4]),
            helper.make_tensor_value_info("box_batch_indices", TensorProto.INT64, [None]),
        ]
        node = helper.make_node(
            "RoiAlign", ["maps", "boxes", "box_batch_indices"], ["pooled"], name="roi", mode="avg",
            output_height=shape.pooled, output_width=shape.pooled, sampling_ratio=2, spatial_scale=1.0,
            coordinate_transformation_mode="half_pixel",
        )  # fmt: skip
    else:
        inputs = [maps, helper.make_tensor_value_info("rois", TensorProto.FLOAT, [None, 5])]
        node = helper.make_node(
            "MaxRoiPool", ["maps", "rois"], ["pooled"], name="roi",
            pooled_shape=[shape.pooled, shape.pooled], spatial_scale=1.0,
        )  # fmt: skip
    body = helper.make_graph([node], f"bench-{op}", inputs, [pooled])
    # IR 8 (opset 17 era): loadable by any onnxruntime the GPU machine may carry, whatever onnx wrote it.
    proto = helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return rewrite_max_roi_pool(proto) if op == "RoIPool rewrite" else proto


def _feeds(op: str, shape: RoIShape) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((shape.images, shape.channels, shape.size, shape.size)).astype(np.float32)
    corner = rng.uniform(0, shape.size * 0.7, (shape.boxes, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(2, shape.size * 0.3, (shape.boxes, 2))], 1)
    indices = rng.integers(0, shape.images, shape.boxes)
    if op == "RoiAlign":
        return {"maps": maps, "boxes": boxes.astype(np.float32), "box_batch_indices": indices}
    return {"maps": maps, "rois": np.concatenate([indices[:, None], boxes], 1).astype(np.float32)}


def placement(proto: onnx.ModelProto, providers: list[str], feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """Node count per provider, read from onnxruntime's own profile of one run."""
    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "profile")
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=providers)
        session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    placed = {
        e["name"]: e["args"]["provider"]
        for e in events
        if e.get("cat") == "Node" and "provider" in e.get("args", {})
    }
    return dict(Counter(placed.values()))


def _median_ms(run: object, repeats: int) -> float:
    assert callable(run)
    run()  # first-run allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _bound_runner(session: ort.InferenceSession, feeds: dict[str, np.ndarray], device: str) -> object:
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, device, 0))
    binding.bind_output("pooled", device)

    def run() -> None:
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return run


def measure(provider: str, shape: RoIShape, repeats: int) -> dict[str, object]:
    providers = [provider, CPU] if provider != CPU else [CPU]
    device = "cuda" if provider == CUDA else "cpu"
    results: dict[str, object] = {}
    for op in ("RoiAlign", "MaxRoiPool", "RoIPool rewrite"):
        proto = graph(op, shape)
        feeds = _feeds(op, shape)
        session = ort.InferenceSession(proto.SerializeToString(), providers=providers)
        reference = ort.InferenceSession(proto.SerializeToString(), providers=[CPU])
        got, want = session.run(None, feeds)[0], reference.run(None, feeds)[0]
        results[op] = {
            "nodes_by_provider": placement(proto, providers, feeds),
            "ms_host_arrays": round(_median_ms(lambda: session.run(None, feeds), repeats), 4),  # noqa: B023
            "ms_io_binding": round(_median_ms(_bound_runner(session, feeds, device), repeats), 4),
            "max_abs_diff_vs_cpu": float(np.abs(got - want).max()),
        }
    rewrite_vs_kernel = _rewrite_matches_kernel(shape)
    return {
        "shape": shape.__dict__,
        "providers": providers,
        "ops": results,
        "rewrite_equals_kernel": rewrite_vs_kernel,
    }


def _rewrite_matches_kernel(shape: RoIShape) -> bool:
    """The rewrite is exact: on the CPU it must equal the MaxRoiPool kernel bit for bit."""
    feeds = _feeds("MaxRoiPool", shape)
    kernel = ort.InferenceSession(graph("MaxRoiPool", shape).SerializeToString(), providers=[CPU])
    rewrite = ort.InferenceSession(graph("RoIPool rewrite", shape).SerializeToString(), providers=[CPU])
    return bool(np.array_equal(kernel.run(None, feeds)[0], rewrite.run(None, feeds)[0]))
