"""Parity between an exported ONNX graph and its PyTorch module, run before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from poolserve.export.onnx_export import ExportError

TOLERANCE = 1e-4
BATCH_SIZES = (1, 2, 7)
BOX_COUNTS = (0, 1, 50)

# One case: named numpy inputs for onnxruntime; the torch module gets the same arrays in graph order.
InputCase = dict[str, np.ndarray]


@dataclass(frozen=True)
class ParityResult:
    max_abs_error: float
    cases: int


def random_boxes(
    rng: np.random.Generator, count: int, batch: int, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of every kind: inside, crossing the border, tiny, degenerate; any image of the batch.
    ``size`` is the square frame's side, or ``(height, width)``."""
    # per axis (x, y) for a rectangular frame; a square one keeps its scalar (and its drawn numbers)
    frame: float | np.ndarray = size if isinstance(size, int) else np.asarray([size[1], size[0]], np.float64)
    corner = rng.uniform(-0.2 * frame, 1.1 * frame, size=(count, 2))
    extent = rng.uniform(0, 0.6 * frame, size=(count, 2)) * (rng.uniform(size=(count, 1)) > 0.1)
    boxes = np.concatenate([corner, corner + extent], axis=1).astype(np.float32)
    return boxes, rng.integers(0, batch, size=count).astype(np.int64)


def session_for(proto: onnx.ModelProto | bytes) -> ort.InferenceSession:
    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: a failing run raises, and the exception says why
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def check_graph(proto: onnx.ModelProto) -> None:
    """onnx.checker with full_check (runs strict shape inference too)."""
    onnx.checker.check_model(proto, full_check=True)


def _declared_shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


def compare(
    proto: onnx.ModelProto, model: nn.Module, cases: Sequence[InputCase], tolerance: float = TOLERANCE
) -> ParityResult:
    """Max abs error over all outputs and cases; raises :class:`ExportError` above ``tolerance``, on any
    shape difference, or when a declared static output dimension disagrees with the computed one."""
    session = session_for(proto)
    input_names = [i.name for i in session.get_inputs()]
    declared = {o.name: _declared_shape(o) for o in proto.graph.output}
    worst = 0.0
    for case in cases:
        ort_outputs = session.run(None, case)
        with torch.no_grad():
            torch_outputs = model(*(torch.from_numpy(case[name]) for name in input_names))
        if isinstance(torch_outputs, torch.Tensor):
            torch_outputs = (torch_outputs,)
        for name, got, want_tensor in zip(declared, ort_outputs, torch_outputs, strict=True):
            want = want_tensor.numpy()
            shapes = {k: v.shape for k, v in case.items()}
            if got.shape != want.shape:
                raise ExportError(
                    f"output {name}: onnxruntime shape {got.shape} != torch {want.shape} for {shapes}"
                )
            for axis, dim in enumerate(declared[name]):
                if isinstance(dim, int) and dim > 0 and dim != got.shape[axis]:
                    raise ExportError(
                        f"output {name}: declared dim {axis} is {dim}, computed {got.shape[axis]}"
                    )
            if got.size:
                if got.dtype.kind in "iu":
                    error = float(np.abs(got.astype(np.int64) - want.astype(np.int64)).max())
                else:
                    error = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
                if not np.isfinite(error) or error > tolerance:
                    largest = float(np.abs(want).max()) if want.dtype.kind == "f" else 0.0
                    scale = (  # a large output's float32 rounding alone can exceed an absolute tolerance
                        f" (outputs up to {largest:.3g}, where float32 values are "
                        f"{float(np.spacing(np.float32(largest))):.2g} apart)"
                        if largest > 1
                        else ""
                    )
                    raise ExportError(
                        f"output {name}: max abs error {error:.3g} > {tolerance:g} for {shapes}{scale}"
                    )
                worst = max(worst, error)
    return ParityResult(worst, len(cases))


def check_batch_independence(proto: onnx.ModelProto, cases: Sequence[InputCase], tolerance: float) -> float:
    """Run every multi-image case's images one at a time too, and raise :class:`ExportError` when an
    image's outputs depend on the other images of its batch (beyond ``tolerance``); returns the largest
    difference. The service batches requests from different clients together, so such a model (one that
    normalizes by a statistic of the whole batch, say) would answer each client differently depending on
    who else was asking. Region cases run each image with its own boxes."""
    session = session_for(proto)
    names = [o.name for o in proto.graph.output]
    worst = 0.0
    for case in cases:
        images = case["images"]
        if len(images) < 2:
            continue
        batched = session.run(None, case)
        for i in range(len(images)):
            alone: InputCase = {"images": images[i : i + 1]}
            rows: np.ndarray | slice = slice(i, i + 1)
            if "boxes" in case:
                own = case["box_batch_indices"] == i
                alone["boxes"] = case["boxes"][own]
                alone["box_batch_indices"] = np.zeros(int(own.sum()), case["box_batch_indices"].dtype)
                rows = own
            for name, together, single in zip(names, batched, session.run(None, alone), strict=True):
                part = together[rows]
                if not part.size:
                    continue
                difference = float(np.abs(part.astype(np.float64) - single.astype(np.float64)).max())
                if not np.isfinite(difference) or difference > tolerance:
                    raise ExportError(
                        f"output {name}: image {i} of a batch of {len(images)} differs from the same image "
                        f"run alone by {difference:.3g} (> {tolerance:g}): its result depends on the other "
                        "images of the batch, and the service batches different clients' requests together; "
                        "use per-image statistics (e.g. x.amax(dim=(1, 2, 3), keepdim=True), not x.max())"
                    )
                worst = max(worst, difference)
    return worst
