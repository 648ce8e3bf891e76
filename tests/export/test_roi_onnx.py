"""The exported RoI ops (ONNX RoiAlign / MaxRoiPool in onnxruntime) against the numpy-loop reference."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from poolserve.export.onnx_export import GraphSignature, export_onnx
from poolserve.export.parity import session_for
from poolserve.models.roi import RoIAlign, RoIPool
from tests.models.roi_cases import HAND_MADE, features, random_case
from tests.models.roi_reference import roi_align_reference, roi_pool_reference

SIGNATURE = GraphSignature(
    inputs=["features", "boxes", "box_batch_indices"],
    outputs=["pooled"],
    dynamic_axes={
        "features": {0: "batch"},
        "boxes": {0: "boxes"},
        "box_batch_indices": {0: "boxes"},
        "pooled": {0: "boxes"},
    },
)
CASES = [*HAND_MADE, random_case(1, 1), random_case(2, 50)]


class _Wrapped(nn.Module):
    def __init__(self, roi: nn.Module):
        super().__init__()
        self.roi = roi

    def forward(self, maps: torch.Tensor, boxes: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.roi(maps, boxes, indices)


def _export(roi: nn.Module) -> onnx.ModelProto:
    example = random_case(9, 5)
    inputs = (
        torch.from_numpy(features()),
        torch.from_numpy(example.boxes),
        torch.from_numpy(example.batch_indices),
    )
    return export_onnx(_Wrapped(roi), inputs, SIGNATURE)


@pytest.mark.parametrize(
    ("output_size", "scale", "sampling_ratio", "aligned"),
    [((2, 2), 0.5, -1, False), ((3, 4), 0.5, 2, True), ((7, 7), 0.25, 0, True), ((2, 3), 1.0, 1, False)],
)
def test_exported_roi_align_matches_reference(output_size, scale, sampling_ratio, aligned):
    proto = _export(RoIAlign(output_size, scale, sampling_ratio, aligned))
    (node,) = [n for n in proto.graph.node if n.op_type == "RoiAlign"]
    mode = next(a.s.decode() for a in node.attribute if a.name == "coordinate_transformation_mode")
    assert mode == ("half_pixel" if aligned else "output_half_pixel")
    session = session_for(proto)
    maps = features()
    for case in CASES:
        feeds = {"features": maps, "boxes": case.boxes, "box_batch_indices": case.batch_indices}
        (got,) = session.run(None, feeds)
        want = roi_align_reference(
            maps, case.boxes, case.batch_indices, output_size, scale, sampling_ratio, aligned
        )
        assert got.shape == want.shape, case.name
        # float32 kernel vs float64 reference: each bin averages a few bilinear samples of unit-scale
        # values, so rounding stays near 1e-7 on any ISA; 1e-5 fails any wrong sample point or bin edge.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=case.name)


@pytest.mark.parametrize(
    ("output_size", "scale"), [((2, 2), 0.5), ((3, 4), 0.5), ((7, 7), 0.25), ((5, 3), 1.0 / 3.0)]
)
def test_exported_roi_pool_matches_reference_exactly(output_size, scale):
    proto = _export(RoIPool(output_size, scale))
    assert [n.op_type for n in proto.graph.node].count("MaxRoiPool") == 1
    session = session_for(proto)
    maps = features()
    for case in CASES:
        feeds = {"features": maps, "boxes": case.boxes, "box_batch_indices": case.batch_indices}
        (got,) = session.run(None, feeds)
        want = roi_pool_reference(maps, case.boxes, case.batch_indices, output_size, scale)
        np.testing.assert_array_equal(got, want, err_msg=case.name)
