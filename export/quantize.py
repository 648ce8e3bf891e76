"""Reduced-precision variants of an exported float32 graph: int8 (static QDQ) and fp16.

int8: onnxruntime's ``quantize_static`` in QDQ format, weights quantized per output channel, signed 8-bit
weights and activations (onnxruntime's recommended CPU setting), activation ranges calibrated (MinMax) on
the images the caller hands in, which must never be the held-out images used to judge the result.

fp16: every float initializer and op in half precision, graph inputs and outputs kept float32, so the
service feeds and reads the same tensors as before.

Both leave the RoI pooling op and the whole box path (``boxes``/``box_batch_indices`` up to the RoI op)
in float32: a quantized or half-precision box coordinate moves the pooled window (fp16 spacing at 112 px
is 1/16 px; int8 over a 0..112 range is about half a pixel), and onnxruntime's MaxRoiPool has a float32
kernel only.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from poolserve.repository.manifest import QuantizationMode

if TYPE_CHECKING:
    from poolserve.export.parity import (
        InputCase,  # torch-free at run time: poolserve.export.parity imports torch
    )

ROI_OPS = ("RoiAlign", "MaxRoiPool")
INT8_METHOD = (
    "onnxruntime quantize_static: QDQ, per-channel int8 weights, int8 activations, MinMax calibration"
)
FP16_METHOD = "onnxruntime.transformers.float16: fp16 weights and ops, float32 inputs and outputs"


@dataclass(frozen=True)
class QuantizedGraph:
    proto: onnx.ModelProto
    mode: QuantizationMode
    method: str
    kept_float32: list[str]  # node names left in float32 on purpose (the RoI op and its box path)


def roi_box_path(proto: onnx.ModelProto) -> list[str]:
    """Names of the RoI nodes and of every node computing their box inputs (not their feature map)."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    kept: list[str] = []
    pending = [node for node in proto.graph.node if node.op_type in ROI_OPS]
    kept_names = {node.name for node in pending}
    kept += [node.name for node in pending]
    # Walk back from inputs 1.. (rois, and RoiAlign's batch indices); input 0 is the feature map.
    frontier = [name for node in pending for name in node.input[1:]]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None or node.name in kept_names:
            continue
        kept_names.add(node.name)
        kept.append(node.name)
        frontier += list(node.input)
    return kept


def _named(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names: exclusion lists refer to nodes by name."""
    named = onnx.ModelProto()
    named.CopyFrom(proto)
    seen: set[str] = set()
    for index, node in enumerate(named.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
        seen.add(node.name)
    return named


def _without_half_round_trips(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Bypass every ``Cast(to=float16)`` feeding a ``Cast(to=float)``: the converter puts such pairs
    between float32 nodes it was told to keep (the box path, even the ``boxes`` input), which would
    round coordinates to fp16 on the way. Casts left without consumers are dropped."""
    half, single = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT

    def casts_to(node: onnx.NodeProto, kind: int) -> bool:
        return node.op_type == "Cast" and any(a.name == "to" and a.i == kind for a in node.attribute)

    producer = {out: node for node in proto.graph.node for out in node.output}
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for node in fixed.graph.node:
        source = producer.get(node.input[0]) if node.input else None
        if casts_to(node, single) and source is not None and casts_to(source, half):
            node.input[0] = source.input[0]
    used = {name for node in fixed.graph.node for name in node.input} | {o.name for o in fixed.graph.output}
    alive = [n for n in fixed.graph.node if not casts_to(n, half) or any(o in used for o in n.output)]
    del fixed.graph.node[:]
    fixed.graph.node.extend(alive)
    return fixed


def _sorted(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Nodes in topological order: the fp16 converter appends its input casts after their consumers,
    which onnx.checker rejects. Stable: nodes already in order keep it."""
    available = {i.name for i in proto.graph.input} | {t.name for t in proto.graph.initializer} | {""}
    pending, ordered = list(proto.graph.node), []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise ValueError("the converted graph has a cycle or an input nobody produces")
        for node in ready:
            available.update(node.output)
        ordered += ready
        pending = [node for node in pending if node not in ready]
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    del copy.graph.node[:]
    copy.graph.node.extend(ordered)
    return copy


class _CaseReader:
    """onnxruntime's CalibrationDataReader protocol over in-memory cases."""

    def __init__(self, cases: Sequence[InputCase]) -> None:
        self._cases: Iterator[InputCase] = iter(cases)

    def get_next(self) -> InputCase | None:
        return next(self._cases, None)


def quantize_int8(proto: onnx.ModelProto, calibration: Sequence[InputCase]) -> QuantizedGraph:
    """Static QDQ int8 quantization calibrated on ``calibration`` (never the evaluation data)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 quantization needs calibration inputs")

    class Reader(_CaseReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory() as scratch:
        source, prepared, output = (
            Path(scratch) / f"{stem}.onnx" for stem in ("float32", "prepared", "int8")
        )
        # From a file: given a ModelProto, quant_pre_process moves the caller's initializers to external data.
        onnx.save(proto, source)
        # quantize_static warns on every call for graphs not run through its pre-processing (shape
        # inference + graph optimization); run it first, as onnxruntime's own examples do. Node names are
        # taken after it, since optimization replaces nodes.
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        named = _named(onnx.load(prepared))
        kept = roi_box_path(named)
        onnx.save(named, prepared)
        logger = logging.getLogger()
        level = logger.level
        logger.setLevel(logging.ERROR)  # its remaining advice concerns transformer models
        try:
            quantize_static(
                prepared,
                output,
                Reader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=kept,
            )
        finally:
            logger.setLevel(level)
        return QuantizedGraph(onnx.load(output), "int8", INT8_METHOD, kept)


def convert_fp16(proto: onnx.ModelProto) -> QuantizedGraph:
    """Half-precision weights and compute; inputs, outputs, the RoI op and its box path stay float32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    named = _named(proto)
    kept = roi_box_path(named)
    half = convert_float_to_float16(
        named,
        keep_io_types=True,
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, *ROI_OPS],
        node_block_list=kept,
    )
    return QuantizedGraph(_sorted(_without_half_round_trips(half)), "fp16", FP16_METHOD, kept)


def quantize(
    proto: onnx.ModelProto, mode: QuantizationMode, calibration: Sequence[InputCase]
) -> QuantizedGraph:
    if mode == "int8":
        return quantize_int8(proto, calibration)
    return convert_fp16(proto)
