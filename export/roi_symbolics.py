"""ONNX symbolics for the ``poolserve::`` RoI custom ops (TorchScript exporter, opset 16..21).

Kept in one place, like torchvision's ``_register_onnx_ops.py``. ``RoiAlign``'s
``coordinate_transformation_mode`` is always written: its default changed between opsets, and omitting it
silently flips ``aligned``. torchvision's adaptive ``sampling_ratio=-1`` is ONNX's 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.onnx import symbolic_helper

# Importing it defines the poolserve:: custom ops the symbolics refer to.
from poolserve.models.roi import RoIAlign, RoIPool
from poolserve.repository.manifest import RoISettings

MIN_OPSET = 16  # RoiAlign's coordinate_transformation_mode appeared in opset 16


@symbolic_helper.parse_args("v", "v", "v", "i", "i", "f", "i", "b")
def _roi_align(
    g: Any,
    features: Any,
    boxes: Any,
    box_batch_indices: Any,
    pooled_height: int,
    pooled_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Any:
    return g.op(
        "RoiAlign",
        features,
        boxes,
        box_batch_indices,
        coordinate_transformation_mode_s="half_pixel" if aligned else "output_half_pixel",
        mode_s="avg",
        output_height_i=pooled_height,
        output_width_i=pooled_width,
        sampling_ratio_i=max(sampling_ratio, 0),
        spatial_scale_f=spatial_scale,
    )


@symbolic_helper.parse_args("v", "v", "i", "i", "f")
def _roi_pool(
    g: Any, features: Any, rois: Any, pooled_height: int, pooled_width: int, spatial_scale: float
) -> Any:
    return g.op(
        "MaxRoiPool",
        features,
        rois,
        pooled_shape_i=[pooled_height, pooled_width],
        spatial_scale_f=spatial_scale,
    )


def register_roi_symbolics(opset: int) -> None:
    """Idempotent; call before every export."""
    if opset < MIN_OPSET:
        raise ValueError(f"RoI export needs opset >= {MIN_OPSET}, got {opset}")
    torch.onnx.register_custom_op_symbolic("poolserve::roi_align", _roi_align, opset)
    torch.onnx.register_custom_op_symbolic("poolserve::roi_pool", _roi_pool, opset)


def roi_settings(roi: RoIAlign | RoIPool) -> RoISettings:
    """What a manifest records of an RoI module: the ONNX op it exports as, with that op's attributes."""
    if isinstance(roi, RoIAlign):
        return RoISettings(
            op="RoiAlign",
            output_size=roi.output_size,
            spatial_scale=roi.spatial_scale,
            sampling_ratio=max(roi.sampling_ratio, 0),  # as _roi_align writes it
            aligned=roi.aligned,
        )
    return RoISettings(op="MaxRoiPool", output_size=roi.output_size, spatial_scale=roi.spatial_scale)
