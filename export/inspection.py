"""What an ONNX file says about itself: inputs, outputs, dynamic axes, operators, pooling ops, opset.

Used by ``poolserve import`` before it trusts a model it did not export. Torch-free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import onnx
from pydantic import BaseModel, ConfigDict

from poolserve.repository.manifest import TensorSpec

# Every ONNX operator that pools over space (or over regions); the service's subject matter.
POOLING_OPS = frozenset(
    {
        "MaxPool",
        "AveragePool",
        "LpPool",
        "GlobalMaxPool",
        "GlobalAveragePool",
        "GlobalLpPool",
        "MaxRoiPool",
        "RoiAlign",
        "MaxUnpool",
    }
)
_ONNX_DTYPES: dict[int, Literal["float32", "float16", "int64", "int32", "uint8"]] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.UINT8: "uint8",
}
# Axis names for dynamic dimensions the file leaves unnamed (PaddlePaddle writes -1 or "?").
_IMAGE_AXES = ("batch", "channels", "height", "width")


class GraphSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ir_version: int
    opset: int  # of the default (ai.onnx) domain
    other_domains: dict[str, int]
    producer: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_counts: dict[str, int]
    pooling_ops: dict[str, int]
    softmax_outputs: list[str]  # outputs produced directly by a Softmax node


class InspectionError(Exception):
    """A file that is not an ONNX model poolserve can describe."""


def _axis_name(tensor: str, axis: int, rank: int) -> str:
    if axis == 0:
        return "batch"
    if rank == 4:
        return _IMAGE_AXES[axis]
    return f"{tensor}_dim{axis}"


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type.tensor_type
    dtype = _ONNX_DTYPES.get(kind.elem_type)
    if dtype is None:
        name = onnx.TensorProto.DataType.Name(kind.elem_type)
        raise InspectionError(f"tensor {value.name!r} has unsupported dtype {name}")
    dims = list(kind.shape.dim)
    shape: list[int | str] = []
    for axis, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        elif dim.HasField("dim_param") and dim.dim_param not in ("", "?"):
            shape.append(dim.dim_param)
        else:
            shape.append(_axis_name(value.name, axis, len(dims)))
    return TensorSpec(name=value.name, dtype=dtype, shape=shape)


def _produced_by_softmax(graph: onnx.GraphProto, tensor: str) -> bool:
    """Whether ``tensor`` is a Softmax's output, looking through Identity nodes (PaddlePaddle adds one)."""
    producers = {name: node for node in graph.node for name in node.output}
    node = producers.get(tensor)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    return node is not None and node.op_type == "Softmax"


def summarize(model: onnx.ModelProto) -> GraphSummary:
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    opsets = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    if "ai.onnx" not in opsets:
        raise InspectionError("the model imports no default-domain (ai.onnx) opset")
    ops = Counter(node.op_type for node in graph.node if node.domain in ("", "ai.onnx"))
    ops.update(f"{node.domain}::{node.op_type}" for node in graph.node if node.domain not in ("", "ai.onnx"))
    softmax = sorted(out.name for out in graph.output if _produced_by_softmax(graph, out.name))
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return GraphSummary(
        ir_version=model.ir_version,
        opset=opsets.pop("ai.onnx"),
        other_domains=opsets,
        producer=producer or "unknown",
        inputs=[_tensor_spec(v) for v in graph.input if v.name not in initializers],
        outputs=[_tensor_spec(v) for v in graph.output],
        op_counts=dict(sorted(ops.items())),
        pooling_ops={op: n for op, n in sorted(ops.items()) if op in POOLING_OPS},
        softmax_outputs=softmax,
    )


def _inspect(load: Callable[[], onnx.ModelProto], source: str) -> tuple[onnx.ModelProto, GraphSummary]:
    try:
        model = load()
        onnx.checker.check_model(model, full_check=True)
    # onnx raises protobuf's DecodeError for garbage bytes, ValidationError/InferenceError for bad graphs.
    except Exception as exc:
        raise InspectionError(f"{source}: not a valid ONNX model: {type(exc).__name__}: {exc}") from exc
    return model, summarize(model)


def inspect_bytes(data: bytes, source: str) -> tuple[onnx.ModelProto, GraphSummary]:
    """Load, run onnx's full checker (with shape inference), and summarize the graph; ``source`` says
    where the bytes came from."""
    return _inspect(lambda: onnx.load_model_from_string(data), source)


def require_model_file(path: Path) -> None:
    """Refuse a path that is no file before onnx reads it: onnx's own error would call a missing file
    "not a valid ONNX model"."""
    if path.is_dir():
        raise InspectionError(f"{path} is a folder, not an ONNX file")
    if not path.exists():
        raise InspectionError(f"{path}: no such file")


def inspect_file(path: Path) -> tuple[onnx.ModelProto, GraphSummary]:
    """As :func:`inspect_bytes`; external data files beside ``path`` are loaded too."""
    require_model_file(path)
    return _inspect(lambda: onnx.load(str(path)), str(path))
