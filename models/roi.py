"""RoI pooling without torchvision: ``roi_align`` (Mask R-CNN) and ``roi_pool`` (Fast R-CNN).

Both follow torchvision's CPU kernels exactly in semantics. The eager implementations are vectorized and
differentiable (used for training); during ONNX export the modules call the ``poolserve::`` custom ops
instead, which ``poolserve.export.roi_symbolics`` maps to ONNX ``RoiAlign`` / ``MaxRoiPool``.

Shapes: ``features`` (N, C, H, W); ``boxes`` (K, 4) as ``x1, y1, x2, y2`` in input-image pixels;
``box_batch_indices`` (K,) int64; output (K, C, PH, PW). ``spatial_scale`` maps image pixels to
feature-map cells (1 / the backbone's stride).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _bilinear_weights(coords: Tensor, valid_count: Tensor, size: int) -> Tensor:
    """Interpolation weights onto a length-``size`` axis, summed over each bin's samples.

    ``coords`` (K, P, G): sample positions; samples ``g >= valid_count[k]`` are padding and weigh 0.
    Returns (K, P, size). Bilinear interpolation is separable, so RoIAlign is ``Wy @ F @ Wx^T``.
    Edge rules are torchvision's: a sample beyond -1 or ``size`` contributes 0; otherwise it is clamped
    at 0 and, at the far edge, snapped to the last cell.
    """
    inside = (coords >= -1.0) & (coords <= size)
    inside &= torch.arange(coords.shape[-1], device=coords.device) < valid_count[:, None, None]
    coords = coords.clamp(min=0.0)
    low = coords.floor().to(torch.int64)
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    coords = torch.where(at_edge, low.to(coords.dtype), coords)
    frac = coords - low.to(coords.dtype)
    weight_low = (1.0 - frac) * inside
    weight_high = frac * inside
    weights = coords.new_zeros((*coords.shape[:2], size))
    weights.scatter_add_(2, low, weight_low)
    weights.scatter_add_(2, high, weight_high)
    return weights


def _sample_positions(start: Tensor, bin_size: Tensor, pooled: int, grid: Tensor, max_grid: int) -> Tensor:
    """(K, pooled, max_grid) sample coordinates along one axis."""
    bins = torch.arange(pooled, dtype=start.dtype, device=start.device)
    steps = torch.arange(max_grid, dtype=start.dtype, device=start.device) + 0.5
    offset = bins[None, :, None] * bin_size[:, None, None]
    within = steps[None, None, :] * (bin_size / grid.to(start.dtype))[:, None, None]
    return start[:, None, None] + offset + within


def roi_align(
    features: Tensor,
    boxes: Tensor,
    box_batch_indices: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Average of bilinearly interpolated samples per bin; ``sampling_ratio <= 0`` picks
    ``ceil(roi_size / output_size)`` samples per bin per axis, per box (torchvision's adaptive rule)."""
    pooled_h, pooled_w = output_size
    height, width = features.shape[-2:]
    if boxes.shape[0] == 0:
        return features.new_zeros((0, features.shape[1], pooled_h, pooled_w))
    offset = 0.5 if aligned else 0.0
    scaled = boxes * spatial_scale - offset
    x1, y1, x2, y2 = scaled.unbind(1)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.int64)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.int64)
    else:
        grid_h = torch.ceil(roi_h / pooled_h).to(torch.int64)
        grid_w = torch.ceil(roi_w / pooled_w).to(torch.int64)
    max_h, max_w = max(int(grid_h.max()), 1), max(int(grid_w.max()), 1)
    weights_y = _bilinear_weights(
        _sample_positions(y1, bin_h, pooled_h, grid_h.clamp(min=1), max_h), grid_h, height
    )
    weights_x = _bilinear_weights(
        _sample_positions(x1, bin_w, pooled_w, grid_w.clamp(min=1), max_w), grid_w, width
    )
    count = (grid_h * grid_w).clamp(min=1).to(features.dtype)
    pooled = torch.einsum("kph,kchw,kqw->kcpq", weights_y, features[box_batch_indices], weights_x)
    return pooled / count[:, None, None, None]


def _round_half_away(values: Tensor) -> Tensor:
    """C++ ``std::round`` (torch.round rounds half to even)."""
    return torch.sign(values) * torch.floor(values.abs() + 0.5)


def _bin_bounds(start: Tensor, end: Tensor, pooled: int, size: int) -> tuple[Tensor, Tensor]:
    """(K, pooled) first and one-past-last feature cell of each quantized bin (floor/ceil, clipped)."""
    length = (end - start + 1).clamp(min=1).to(torch.float32)
    bins = torch.arange(pooled, dtype=torch.float32, device=start.device)
    bin_size = length[:, None] / pooled
    lo = (torch.floor(bins * bin_size) + start[:, None]).clamp(0, size)
    hi = (torch.ceil((bins + 1) * bin_size) + start[:, None]).clamp(0, size)
    return lo.to(torch.int64), hi.to(torch.int64)


def _max_over_bins(maps: Tensor, lo: Tensor, hi: Tensor, dim: int) -> Tensor:
    """Max of ``maps`` (K, ..., size, ...) over each bin along ``dim``; the bins replace that axis.

    Gathers ``max(hi - lo)`` cells per bin (a few, for boxes of digit size) instead of masking the whole
    axis. Cells past a bin's end are masked; an empty bin yields the dtype's lowest value.
    """
    span = max(int((hi - lo).max()), 1)
    size = maps.shape[dim]
    offsets = torch.arange(span, device=maps.device)
    index = (lo[..., None] + offsets).clamp(max=size - 1)  # (K, P, span)
    valid = offsets < (hi - lo)[..., None]
    moved = maps.movedim(dim, -1)  # (K, ..., size)
    flat_index = index.reshape(index.shape[0], *([1] * (moved.dim() - 2)), -1).expand(*moved.shape[:-1], -1)
    gathered = moved.gather(-1, flat_index).unflatten(-1, index.shape[1:])  # (K, ..., P, span)
    mask = valid.reshape(valid.shape[0], *([1] * (moved.dim() - 2)), *valid.shape[1:])
    pooled = gathered.masked_fill(~mask, torch.finfo(maps.dtype).min).amax(-1)
    return pooled.movedim(-1, dim)


def roi_pool(
    features: Tensor,
    boxes: Tensor,
    box_batch_indices: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Maximum over quantized bins; an empty bin yields 0. Computed separably: max over the columns of
    each W-bin, then over the rows of each H-bin."""
    pooled_h, pooled_w = output_size
    height, width = features.shape[-2:]
    if boxes.shape[0] == 0:
        return features.new_zeros((0, features.shape[1], pooled_h, pooled_w))
    corners = _round_half_away(boxes * spatial_scale)
    x1, y1, x2, y2 = corners.unbind(1)
    row_lo, row_hi = _bin_bounds(y1, y2, pooled_h, height)
    col_lo, col_hi = _bin_bounds(x1, x2, pooled_w, width)
    maps = features[box_batch_indices]  # (K, C, H, W)
    pooled = _max_over_bins(_max_over_bins(maps, col_lo, col_hi, 3), row_lo, row_hi, 2)  # (K, C, PH, PW)
    empty = (row_hi <= row_lo)[:, :, None] | (col_hi <= col_lo)[:, None, :]
    return pooled.masked_fill(empty[:, None], 0.0)


@torch.library.custom_op("poolserve::roi_align", mutates_args=())
def roi_align_op(
    features: Tensor,
    boxes: Tensor,
    box_batch_indices: Tensor,
    pooled_height: int,
    pooled_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """Export-time stand-in for :func:`roi_align` (one graph node, exported as ONNX ``RoiAlign``)."""
    with torch.no_grad():
        return roi_align(
            features,
            boxes,
            box_batch_indices,
            (pooled_height, pooled_width),
            spatial_scale,
            sampling_ratio,
            aligned,
        )


@roi_align_op.register_fake
def _roi_align_fake(
    features: Tensor,
    boxes: Tensor,
    box_batch_indices: Tensor,
    pooled_height: int,
    pooled_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    return features.new_empty((boxes.shape[0], features.shape[1], pooled_height, pooled_width))


@torch.library.custom_op("poolserve::roi_pool", mutates_args=())
def roi_pool_op(
    features: Tensor, rois: Tensor, pooled_height: int, pooled_width: int, spatial_scale: float
) -> Tensor:
    """Export-time stand-in for :func:`roi_pool`; ``rois`` (K, 5) = ``[batch_index, x1, y1, x2, y2]``
    as ONNX ``MaxRoiPool`` takes them."""
    with torch.no_grad():
        indices = rois[:, 0].to(torch.int64)
        return roi_pool(features, rois[:, 1:], indices, (pooled_height, pooled_width), spatial_scale)


@roi_pool_op.register_fake
def _roi_pool_fake(
    features: Tensor, rois: Tensor, pooled_height: int, pooled_width: int, spatial_scale: float
) -> Tensor:
    return features.new_empty((rois.shape[0], features.shape[1], pooled_height, pooled_width))


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def split_rois(rois: Tensor | list[Tensor]) -> tuple[Tensor, Tensor]:
    """torchvision's box formats to ``(boxes (K, 4), box_batch_indices (K,))``: a (K, 5) tensor of
    ``[batch_index, x1, y1, x2, y2]`` rows, or a list with one (L, 4) tensor per image."""
    if isinstance(rois, list | tuple):
        indices = [torch.full((len(b),), i, dtype=torch.int64, device=b.device) for i, b in enumerate(rois)]
        return torch.cat(list(rois)), torch.cat(indices)
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be (K, 5) [batch_index, x1, y1, x2, y2], got {tuple(rois.shape)}")
    return rois[:, 1:], rois[:, 0].to(torch.int64)


def _contract(boxes: Tensor | list[Tensor], box_batch_indices: Tensor | None) -> tuple[Tensor, Tensor]:
    if box_batch_indices is None:
        return split_rois(boxes)
    assert isinstance(boxes, Tensor), "boxes with box_batch_indices are one (K, 4) tensor"
    return boxes, box_batch_indices


class RoIAlign(nn.Module):
    """torchvision.ops.RoIAlign's constructor; ``forward(input, rois)`` takes torchvision's box formats,
    or ``forward(input, boxes, box_batch_indices)`` poolserve's (K, 4) boxes and (K,) indices."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int = -1,
        aligned: bool = False,
    ):
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(
        self, features: Tensor, boxes: Tensor | list[Tensor], box_batch_indices: Tensor | None = None
    ) -> Tensor:
        boxes, box_batch_indices = _contract(boxes, box_batch_indices)
        if torch.onnx.is_in_onnx_export():
            return roi_align_op(
                features,
                boxes,
                box_batch_indices,
                *self.output_size,
                self.spatial_scale,
                self.sampling_ratio,
                self.aligned,
            )
        return roi_align(
            features,
            boxes,
            box_batch_indices,
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.aligned,
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class RoIPool(nn.Module):
    """torchvision.ops.RoIPool's constructor; ``forward`` takes the same box formats as :class:`RoIAlign`."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float):
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = spatial_scale

    def forward(
        self, features: Tensor, boxes: Tensor | list[Tensor], box_batch_indices: Tensor | None = None
    ) -> Tensor:
        boxes, box_batch_indices = _contract(boxes, box_batch_indices)
        if torch.onnx.is_in_onnx_export():
            rois = torch.cat([box_batch_indices.to(boxes.dtype)[:, None], boxes], dim=1)
            return roi_pool_op(features, rois, *self.output_size, self.spatial_scale)
        return roi_pool(features, boxes, box_batch_indices, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
