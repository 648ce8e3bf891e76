"""Replace ONNX ``MaxRoiPool`` by an exact equivalent built from standard ops (graph surgery, no retraining).

Why: onnxruntime has ``MaxRoiPool`` as a scalar CPU kernel only (no CUDA kernel), and that kernel visits
every cell of every bin for every channel. The bins of RoIPool are integer rectangles, so each output is
a max over a rectangle of the feature map, and max is exact and idempotent: a 2D sparse table (the max
over every ``2^p x 2^q`` rectangle, built once per image with ``Max`` of shifted ``Slice``s) answers any
rectangle with four overlapping lookups. Per box that is four ``Gather``s of PH x PW channel vectors,
whatever the box's size; per image it is the table, ``log2 W`` x ``sum_p (H - 2^p + 1)`` x W x C floats.

How it compares with the kernel on the CPU, and why no shipped model uses it, is in
docs/region-performance.md (``python -m bench.region_scaling``). Its use is a graph whose RoI stage can run
on any execution provider (standard ops only); the product does not apply it.

The bin arithmetic mirrors onnxruntime's kernel (``onnxruntime/core/providers/cpu/nn/roi_pool.cc``) op by
op and type by type: ``float(coord) * spatial_scale`` rounded half away from zero (``std::round``) to
int32; ``roi = max(end - start + 1, 1)``; ``bin = float(roi) / pooled`` in float32; bounds
``floor(i * bin)``, ``ceil((i + 1) * bin)`` plus the start, clipped to the map; an empty bin is 0, any
other bin is ``max(lowest float, window max)``. Outputs therefore equal the original node's bit for bit
for every finite input (NaN propagation is ``Max``'s, not the kernel's; our maps follow a ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

OP_TYPE = "MaxRoiPool"


class RewriteError(ValueError):
    """The graph has a MaxRoiPool node this rewrite cannot replace exactly (dtype or static shape)."""


@dataclass
class _Builder:
    """Collects the nodes and constants of one replacement, named under a prefix unique to that node."""

    prefix: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _count: int = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}/{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", **attributes: Any) -> str:
        output = self.name(hint or op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def i32(self, value: int | list[int]) -> str:
        return self.const("i32", np.asarray(value, np.int32))

    def i64(self, value: int | list[int]) -> str:
        return self.const("i64", np.asarray(value, np.int64))

    def f32(self, value: float | list[float]) -> str:
        return self.const("f32", np.asarray(value, np.float32))

    def slice(self, data: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", [data, self.i64([start]), self.i64([end]), self.i64([axis])])


def _levels(size: int) -> list[int]:
    """Window lengths 1, 2, 4, ... up to ``size``: enough for two overlapping windows to cover any run."""
    return [1 << k for k in range(size.bit_length())]


@dataclass(frozen=True)
class _TableLayout:
    """Where ``max maps[n, :, y:y+2^p, x:x+2^q]`` sits in the table: row
    ``n * per_image + q * per_width_level + row_offset[p] + y * W + x``. Width levels are padded to W and
    ordered outside the height levels, so a row index is a row part plus a column part."""

    height: int
    width: int

    @property
    def row_offset(self) -> list[int]:
        heights = [self.height - p + 1 for p in _levels(self.height)]
        return [int(v) * self.width for v in np.cumsum([0, *heights[:-1]])]

    @property
    def per_width_level(self) -> int:
        return sum(self.height - p + 1 for p in _levels(self.height)) * self.width

    @property
    def per_image(self) -> int:
        return self.per_width_level * len(_levels(self.width))


def _doubled(b: _Builder, data: str, length: int, size: int, axis: int) -> str:
    """``max(data[i], data[i + length])`` along ``axis`` (of extent ``size``): windows twice as long."""
    count = size - length
    return b.op("Max", [b.slice(data, 0, count, axis), b.slice(data, length, length + count, axis)])


def _sparse_table(b: _Builder, maps: str, height: int, width: int, channels: int) -> str:
    """(N * per_image + 1, C) table (see :class:`_TableLayout`), channel vectors contiguous, then one
    row of zeros: what an empty bin reads. All width levels are stacked before the height doublings, so
    each doubling is one ``Max`` of two ``Slice``s for the whole batch. ``Max`` with the lowest float
    first: the kernel starts every non-empty bin there.
    """
    nhwc = b.op("Transpose", [maps], perm=[0, 2, 3, 1])
    level = b.op("Max", [nhwc, b.f32(float(np.finfo(np.float32).min))])
    padded, extent = [], width  # width levels, each padded back to W: (N, 1, H, W, C)
    for q in _levels(width):
        if q > 1:
            level = _doubled(b, level, q // 2, extent, 2)
            extent -= q // 2
        grown = level if q == 1 else b.op("Pad", [level, b.i64([0, 0, 0, 0, 0, 0, width - extent, 0])])
        padded.append(b.op("Unsqueeze", [grown, b.i64([1])]))
    stacked = b.op("Concat", padded, axis=1) if len(padded) > 1 else padded[0]  # (N, LW, H, W, C)
    by_height, extent = [stacked], height
    for p in _levels(height)[1:]:
        by_height.append(_doubled(b, by_height[-1], p // 2, extent, 2))
        extent -= p // 2
    rows = b.op("Concat", by_height, axis=2) if len(by_height) > 1 else stacked  # (N, LW, sum h_p, W, C)
    table = b.op("Reshape", [rows, b.i64([-1, channels])])
    zeros = b.const("zeros", np.zeros((1, channels), np.float32))
    return b.op("Concat", [table, zeros], axis=0, hint="sparse_table")


def _round_half_away(b: _Builder, values: str) -> str:
    """float32 ``std::round`` (ONNX ``Round`` rounds half to even); exact: ``|v| - floor(|v|)`` is exact."""
    magnitude = b.op("Abs", [values])
    whole = b.op("Floor", [magnitude])
    fraction = b.op("Sub", [magnitude, whole])
    up = b.op("Cast", [b.op("GreaterOrEqual", [fraction, b.f32(0.5)])], to=TensorProto.FLOAT)
    rounded = b.op("Add", [whole, up])
    return b.op("Where", [b.op("Less", [values, b.f32(0.0)]), b.op("Neg", [rounded]), rounded])


@dataclass(frozen=True)
class _AxisBins:
    level: str  # (K, P) int32: floor(log2(window length)), 0 for empty bins
    first: str  # (K, P, 2) int32: the two window starts (equal for a window of exactly 2^level)
    empty: str  # (K, P) bool


def _axis_bins(b: _Builder, start: str, end: str, pooled: int, size: int) -> _AxisBins:
    """``start``/``end``: (K, 1) int32 rounded RoI corners along one axis of a ``size``-long map."""
    one, zero, limit = b.i32(1), b.i32(0), b.i32(size)
    roi = b.op("Max", [b.op("Add", [b.op("Sub", [end, start]), one]), one])
    bin_size = b.op("Div", [b.op("Cast", [roi], to=TensorProto.FLOAT), b.f32(float(pooled))])
    index = np.arange(pooled, dtype=np.float32)

    def bound(rounding: str, multiples: np.ndarray) -> str:
        cells = b.op(
            "Cast", [b.op(rounding, [b.op("Mul", [b.f32(list(multiples)), bin_size])])], to=TensorProto.INT32
        )
        return b.op("Min", [b.op("Max", [b.op("Add", [cells, start]), zero]), limit])

    lo, hi = bound("Floor", index), bound("Ceil", index + 1)  # (K, P) int32, in [0, size]
    length = b.op("Sub", [hi, lo])
    empty = b.op("LessOrEqual", [length, zero])
    clamped = b.op("Max", [length, one])
    log2 = np.array([0] + [n.bit_length() - 1 for n in range(1, size + 1)], np.int32)
    level = b.op("Gather", [b.const("log2", log2), clamped])
    window = b.op("Gather", [b.const("pow2", np.array(_levels(size), np.int32)), level])
    # An empty bin may sit at ``size``; pulling its start back keeps every lookup inside the table.
    first = b.op("Min", [lo, b.op("Sub", [limit, window])])
    second = b.op("Sub", [b.op("Add", [first, clamped]), window])
    axes = b.i64([2])
    pair = b.op("Concat", [b.op("Unsqueeze", [first, axes]), b.op("Unsqueeze", [second, axes])], axis=2)
    return _AxisBins(level, pair, empty)


def _replacement(node: onnx.NodeProto, shape: list[int], builder: _Builder) -> None:
    _, channels, height, width = shape
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    pooled_h, pooled_w = (int(v) for v in attributes["pooled_shape"])
    scale = float(attributes.get("spatial_scale", 1.0))
    b = builder
    maps, rois = node.input
    table = _sparse_table(b, maps, height, width, channels)
    layout = _TableLayout(height, width)

    batch = b.op("Cast", [b.op("Cast", [b.slice(rois, 0, 1, 1)], to=TensorProto.INT32)], to=TensorProto.INT64)
    scaled = b.op("Mul", [b.slice(rois, 1, 5, 1), b.f32(scale)])
    corners = b.op("Cast", [_round_half_away(b, scaled)], to=TensorProto.INT32)  # x1 y1 x2 y2
    rows = _axis_bins(b, b.slice(corners, 1, 2, 1), b.slice(corners, 3, 4, 1), pooled_h, height)
    cols = _axis_bins(b, b.slice(corners, 0, 1, 1), b.slice(corners, 2, 3, 1), pooled_w, width)

    def part(bins: _AxisBins, level_offsets: list[int], stride: int, base: str | None) -> str:
        """(K, 2 * P) int64, corner-major; empty bins get a large negative part (see below)."""
        first = b.op("Cast", [bins.first], to=TensorProto.INT64)  # (K, P, 2)
        offset = b.op("Gather", [b.i64(level_offsets), bins.level])  # (K, P)
        value = b.op("Add", [b.op("Mul", [first, b.i64(stride)]), b.op("Unsqueeze", [offset, b.i64([2])])])
        if base is not None:
            value = b.op("Add", [value, b.op("Unsqueeze", [base, b.i64([2])])])
        value = b.op("Where", [b.op("Unsqueeze", [bins.empty, b.i64([2])]), b.i64(-(1 << 40)), value])
        return b.op("Reshape", [b.op("Transpose", [value], perm=[0, 2, 1]), b.i64([0, -1])])

    image_base = b.op("Mul", [batch, b.i64(layout.per_image)])  # (K, 1)
    row_part = part(rows, layout.row_offset, width, image_base)
    col_part = part(cols, [q * layout.per_width_level for q in range(len(_levels(width)))], 1, None)
    index = b.op(
        "Add", [b.op("Unsqueeze", [row_part, b.i64([2])]), b.op("Unsqueeze", [col_part, b.i64([1])])]
    )
    # An empty bin's index is hugely negative: clamped to -1, the table's zero row.
    index = b.op("Max", [index, b.i64(-1)])  # (K, 2 PH, 2 PW)

    # One Gather per corner pair and one elementwise Max: onnxruntime's ReduceMax over a short axis is
    # several times slower than Max of same-shape inputs (measured).
    grouped = b.op("Reshape", [index, b.i64([0, 2, pooled_h, 2, pooled_w])])
    lookups = []
    for row_corner in (0, 1):
        for col_corner in (0, 1):
            one = b.slice(b.slice(grouped, row_corner, row_corner + 1, 1), col_corner, col_corner + 1, 3)
            flat = b.op("Reshape", [one, b.i64([0, pooled_h, pooled_w])])
            lookups.append(b.op("Gather", [table, flat], axis=0))  # (K, PH, PW, C)
    pooled = b.op("Max", lookups)
    b.nodes.append(
        helper.make_node("Transpose", [pooled], list(node.output), name=b.name("nchw"), perm=[0, 3, 1, 2])
    )


def _map_shapes(proto: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = shape_inference.infer_shapes(proto)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        tensor = value.type.tensor_type
        if tensor.elem_type == TensorProto.FLOAT:
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return shapes


def rewrite_max_roi_pool(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` with every ``MaxRoiPool`` node replaced by its standard-op equivalent.

    Needs float32 feature maps with static C, H and W (the batch may be dynamic); refuses otherwise.
    """
    shapes = _map_shapes(proto)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(proto)
    graph = rewritten.graph
    nodes: list[onnx.NodeProto] = []
    for position, node in enumerate(proto.graph.node):
        if node.op_type != OP_TYPE or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        shape = shapes.get(node.input[0])
        if shape is None or len(shape) != 4 or min(shape[1:]) <= 0:
            raise RewriteError(
                f"{node.name or OP_TYPE}: needs a float32 (N, C, H, W) map with static C, H, W"
            )
        builder = _Builder(f"{node.name or OP_TYPE}_{position}/rewrite")
        _replacement(node, shape, builder)
        nodes.extend(builder.nodes)
        graph.initializer.extend(builder.initializers)
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


def has_max_roi_pool(proto: onnx.ModelProto) -> bool:
    return any(node.op_type == OP_TYPE for node in proto.graph.node)
