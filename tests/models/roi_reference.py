"""Slow, obviously-correct numpy loops following torchvision's CPU kernels (roi_align_kernel.cpp,
roi_pool_kernel.cpp), in float32 like the kernels. Independent of poolserve.models.roi on purpose."""

from __future__ import annotations

import math

import numpy as np


def _bilinear(plane: np.ndarray, y: float, x: float) -> float:
    height, width = plane.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * plane[y_low, x_low]
        + hy * lx * plane[y_low, x_high]
        + ly * hx * plane[y_high, x_low]
        + ly * lx * plane[y_high, x_high]
    )


def roi_align_reference(
    features: np.ndarray,
    boxes: np.ndarray,
    batch_indices: np.ndarray,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> np.ndarray:
    pooled_h, pooled_w = output_size
    out = np.zeros((len(boxes), features.shape[1], pooled_h, pooled_w), dtype=np.float64)
    offset = 0.5 if aligned else 0.0
    for k, (box, b) in enumerate(zip(boxes.astype(np.float32), batch_indices, strict=True)):
        start_w = float(np.float32(box[0] * np.float32(spatial_scale)) - np.float32(offset))
        start_h = float(np.float32(box[1] * np.float32(spatial_scale)) - np.float32(offset))
        end_w = float(np.float32(box[2] * np.float32(spatial_scale)) - np.float32(offset))
        end_h = float(np.float32(box[3] * np.float32(spatial_scale)) - np.float32(offset))
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_w)
        count = max(grid_h * grid_w, 1)
        for c in range(features.shape[1]):
            plane = features[int(b), c].astype(np.float64)
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    total = 0.0
                    for iy in range(grid_h):
                        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                            total += _bilinear(plane, y, x)
                    out[k, c, ph, pw] = total / count
    return out.astype(np.float32)


def _round_half_away(value: float) -> int:
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def roi_pool_reference(
    features: np.ndarray,
    boxes: np.ndarray,
    batch_indices: np.ndarray,
    output_size: tuple[int, int],
    spatial_scale: float,
) -> np.ndarray:
    pooled_h, pooled_w = output_size
    height, width = features.shape[-2:]
    out = np.zeros((len(boxes), features.shape[1], pooled_h, pooled_w), dtype=np.float32)
    for k, (box, b) in enumerate(zip(boxes.astype(np.float32), batch_indices, strict=True)):
        x1, y1, x2, y2 = (_round_half_away(float(np.float32(v * np.float32(spatial_scale)))) for v in box)
        roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        bin_h, bin_w = np.float32(roi_h) / np.float32(pooled_h), np.float32(roi_w) / np.float32(pooled_w)
        for ph in range(pooled_h):
            h_start = min(max(math.floor(np.float32(ph) * bin_h) + y1, 0), height)
            h_end = min(max(math.ceil(np.float32(ph + 1) * bin_h) + y1, 0), height)
            for pw in range(pooled_w):
                w_start = min(max(math.floor(np.float32(pw) * bin_w) + x1, 0), width)
                w_end = min(max(math.ceil(np.float32(pw + 1) * bin_w) + x1, 0), width)
                if h_end <= h_start or w_end <= w_start:
                    continue
                out[k, :, ph, pw] = features[int(b), :, h_start:h_end, w_start:w_end].max(axis=(1, 2))
    return out
