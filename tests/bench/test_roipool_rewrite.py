"""bench.roipool_rewrite: the standard-op graph equals onnxruntime's MaxRoiPool node bit for
bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bench.roipool_rewrite import RewriteError, has_max_roi_pool, rewrite_max_roi_pool
from poolserve.export.parity import check_graph, session_for

SHIPPED = Path(__file__).resolve().parents[2] / "model_repository" / "digits-roipool" / "1" / "model.onnx"


def _pool_graph(
    channels: int, height: int, width: int, pooled: tuple[int, int], scale: float
) -> onnx.ModelProto:
    maps = helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["n", channels, height, width])
    rois = helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["k", 5])
    out = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["k", channels, *pooled])
    node = helper.make_node(
        "MaxRoiPool", ["maps", "rois"], ["pooled"], pooled_shape=list(pooled), spatial_scale=scale
    )
    graph = helper.make_graph([node], "roi_pool", [maps, rois], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _rois(rng: np.random.Generator, count: int, images: int, span: float, kind: str) -> np.ndarray:
    """Inside, crossing and outside the map; degenerate and inverted; far larger than the map; and
    coordinates a float32 ulp either side of a .5 rounding boundary (std::round vs round-half-even)."""
    corner = rng.uniform(-0.5 * span, 1.5 * span, (count, 2))
    extent = rng.uniform(0, (3.0 if kind == "huge" else 0.6) * span, (count, 2))
    if kind == "degenerate":
        extent *= rng.uniform(size=(count, 1)) < 0.5
        extent *= rng.choice([1.0, -1.0], (count, 2))  # x2 < x1: the kernel forces a 1-cell RoI
    boxes = np.concatenate([corner, corner + extent], axis=1)
    if kind == "rounding":
        boxes = np.floor(boxes) + 0.5 + rng.choice([0.0, 2.0**-24, -(2.0**-24), -(2.0**-25)], (count, 4))
    batch = rng.integers(0, images, (count, 1))
    return np.concatenate([batch, boxes], axis=1).astype(np.float32)


def _assert_bitwise_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize(
    ("channels", "height", "width", "pooled", "scale"),
    [(32, 28, 28, (7, 7), 0.25), (3, 9, 11, (2, 3), 0.5), (2, 5, 13, (7, 7), 1.0), (4, 1, 1, (3, 3), 1 / 3),
     (2, 17, 6, (4, 1), 0.7)],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["plain", "huge", "degenerate", "rounding"])
def test_rewrite_equals_max_roi_pool_bitwise(channels, height, width, pooled, scale, kind):
    original = _pool_graph(channels, height, width, pooled, scale)
    rewritten = rewrite_max_roi_pool(original)
    check_graph(rewritten)
    assert not has_max_roi_pool(rewritten)
    want_session, got_session = session_for(original), session_for(rewritten)
    rng = np.random.default_rng([channels, height, width])
    span = max(height, width) / scale
    for images, count in [(1, 1), (3, 40), (2, 300)]:
        maps = rng.standard_normal((images, channels, height, width)).astype(np.float32)
        maps[maps < -1.5] = -np.inf  # an all -inf window: the kernel answers the lowest float, not -inf
        feeds = {"maps": maps, "rois": _rois(rng, count, images, span, kind)}
        _assert_bitwise_equal(got_session.run(None, feeds)[0], want_session.run(None, feeds)[0])


def test_shipped_roipool_model_rewritten_gives_identical_outputs():
    original = onnx.load(SHIPPED)
    rewritten = rewrite_max_roi_pool(original)
    check_graph(rewritten)
    want_session, got_session = session_for(original), session_for(rewritten)
    rng = np.random.default_rng(5)
    for images, count in [(1, 1), (2, 64), (7, 50)]:
        rois = _rois(rng, count, images, 112.0, "plain")
        feeds = {
            "images": rng.standard_normal((images, 1, 112, 112)).astype(np.float32),
            "boxes": rois[:, 1:],
            "box_batch_indices": rois[:, 0].astype(np.int64),
        }
        for got, want in zip(got_session.run(None, feeds), want_session.run(None, feeds), strict=True):
            _assert_bitwise_equal(got, want)


def test_dynamic_map_size_is_refused():
    original = _pool_graph(2, 8, 8, (2, 2), 1.0)
    original.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    with pytest.raises(RewriteError, match="static"):
        rewrite_max_roi_pool(original)
