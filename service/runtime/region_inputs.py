"""The one check every region model's RoI inputs pass before onnxruntime sees them.

onnxruntime's ``RoiAlign`` and ``MaxRoiPool`` trust their inputs: an inverted box, a NaN, a batch index
past the images, or a box thousands of times its image's size makes them overflow, spin or crash, and
a large box is slow even when it works (``RoiAlign`` with ``sampling_ratio=0`` samples
``ceil(box side / output side)`` points per bin and axis, so its cost grows with the box's area). Every
entry point (``/v1`` multipart and JSON, ``/v2`` tensors, batch extraction) goes through
``check_region_inputs`` with the boxes in the model input frame, as onnxruntime will get them.

The policy: a box must be finite, ordered (``x1 <= x2``, ``y1 <= y2``; zero width or height is fine),
overlap the input frame, and reach past its edges by at most ``MAX_OVERHANG`` of the frame's width or
height. A box is therefore at most ``1 + 2 * MAX_OVERHANG`` times the frame on each axis, which bounds
the RoI op's cost per box (``roi_cost_bound``; docs/limits.md). Anything else is refused (422), never
clipped: clipping would silently change the features of the box the client asked for.

The policy bounds one box; ``check_roi_cost`` bounds a request's boxes together. On a model that samples
by box size (``RoiAlign`` with ``sampling_ratio=0``) a box within the policy can still cost hundreds of
times a small one (256 times on mtcnn-onet-regions), so a request's boxes are priced (``roi_box_costs``:
the input cells the RoI op reads for each, as onnxruntime sizes its loops) and a request over
``max_request_roi_cost`` is refused (422 ``limit-exceeded``) before it reaches onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from poolserve.repository.manifest import Manifest, RoISettings
from poolserve.service.errors import InvalidField, LimitExceeded

# How far past each edge of the input frame a box may reach, as a fraction of the frame's side: enough
# for a detector's overhanging boxes, small enough that no box costs more than 2.25 whole-frame boxes.
MAX_OVERHANG = 0.25


@dataclass(frozen=True)
class BoxFrame:
    """The model input frame boxes are given in: (width, height) pixels of the preprocessed image."""

    width: float
    height: float

    @classmethod
    def of(cls, manifest: Manifest) -> BoxFrame:
        return cls(float(manifest.preprocessing.width), float(manifest.preprocessing.height))

    @property
    def limits(self) -> tuple[float, float, float, float]:
        """The smallest x and y and the largest x and y a box corner may have."""
        dx, dy = MAX_OVERHANG * self.width, MAX_OVERHANG * self.height
        return -dx, -dy, self.width + dx, self.height + dy


def box_name(row: int) -> str:
    return f"box {row}"


def check_region_inputs(
    boxes: np.ndarray,
    batch_indices: np.ndarray,
    image_count: int,
    frame: BoxFrame,
    name: Callable[[int], str] = box_name,
) -> None:
    """Raise ``InvalidField`` (422) naming the first box onnxruntime must not see.

    ``boxes``: (K, 4) x1 y1 x2 y2 in the input frame; ``batch_indices``: (K,) integers, the image each box
    belongs to; ``name(row)`` says which box the client sent as row ``row`` (default: ``box <row>``).
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4 or batch_indices.shape != (len(boxes),):
        raise InvalidField(
            f"boxes must be (K, 4) with one batch index each; got {list(boxes.shape)} boxes "
            f"and {list(batch_indices.shape)} indices"
        )
    if not np.issubdtype(batch_indices.dtype, np.integer):
        raise InvalidField("box batch indices must be integers")
    boxes = boxes.astype(np.float64, copy=False)
    x1, y1, x2, y2 = boxes.T
    low_x, low_y, high_x, high_y = frame.limits
    _refuse_first(
        (batch_indices < 0) | (batch_indices >= image_count),
        lambda r: f"{name(r)} has batch index {int(batch_indices[r])}; expected 0 <= index < {image_count}",
    )
    _refuse_first(np.isnan(boxes).any(axis=1), lambda r: f"{name(r)} holds NaN; expected finite numbers")
    _refuse_first(
        (x2 < x1) | (y2 < y1),
        lambda r: f"{name(r)} has x2 < x1 or y2 < y1; expected x1 <= x2 and y1 <= y2",
    )
    _refuse_first(
        (x1 > frame.width) | (y1 > frame.height) | (x2 < 0) | (y2 < 0),
        lambda r: f"{name(r)} lies wholly outside its image; expected a box overlapping the image",
    )
    _refuse_first(
        (x1 < low_x) | (y1 < low_y) | (x2 > high_x) | (y2 > high_y),
        lambda r: (
            f"{name(r)} reaches past its image by more than {MAX_OVERHANG:g} of the image's width or "
            "height; expected boxes within that margin"
        ),
    )


def _refuse_first(bad: np.ndarray, message: Callable[[int], str]) -> None:
    if bad.any():
        raise InvalidField(message(int(np.argmax(bad))))


def roi_cost_bound(roi: RoISettings, frame: BoxFrame) -> int:
    """The most input cells the RoI op reads for one box that passes ``check_region_inputs``, per channel.

    ``RoiAlign`` reads 4 cells per sample point, ``sampling_ratio`` (or, for 0, ``ceil(bin side)``) points
    per bin and axis; ``MaxRoiPool`` reads each feature-map cell of the box once (bins are clamped to the
    map, rounding can widen a bin by one cell).
    """
    span = 1 + 2 * MAX_OVERHANG
    box_w, box_h = span * frame.width * roi.spatial_scale, span * frame.height * roi.spatial_scale
    out_h, out_w = roi.output_size
    if roi.op == "MaxRoiPool":
        return (int(np.ceil(box_h)) + 1 + out_h) * (int(np.ceil(box_w)) + 1 + out_w)
    if roi.sampling_ratio > 0:
        grid_h = grid_w = roi.sampling_ratio
    else:
        grid_h, grid_w = int(np.ceil(box_h / out_h)), int(np.ceil(box_w / out_w))
    return 4 * out_h * out_w * max(grid_h * grid_w, 1)


def roi_box_costs(boxes: np.ndarray, roi: RoISettings) -> np.ndarray:
    """(K,) int64: the input cells the RoI op reads for each box, per channel (``roi_cost_bound``'s unit).

    ``boxes``: (K, 4) x1 y1 x2 y2 in the input frame, already through ``check_region_inputs``. The work is
    sized as onnxruntime sizes its loops, in float32 as it computes: ``RoiAlign`` reads 4 cells per sample
    point, ``output_h x output_w`` bins of ``grid_h x grid_w`` points, the grid ``sampling_ratio`` or, for
    0, ``ceil(box side x spatial_scale / output side)`` (at least one point per bin: every box pays for its
    bins); ``MaxRoiPool`` reads the cells of each bin of the box rounded to the feature map, counted
    without its clamping to the map's edges (so, for a box past them, a little more than it reads).
    """
    out_h, out_w = roi.output_size
    scaled = boxes.astype(np.float32, copy=False) * np.float32(roi.spatial_scale)
    if roi.op == "MaxRoiPool":
        corners = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))  # C's round(): half away
        sides = np.maximum(corners[:, 2:] - corners[:, :2] + 1, 1)  # (K, 2): cells wide, cells high
        return _bin_span(sides[:, 1], out_h) * _bin_span(sides[:, 0], out_w)
    offset = np.float32(0.5 if roi.aligned else 0.0)
    sides = (scaled[:, 2:] - offset) - (scaled[:, :2] - offset)  # (K, 2): width, height on the map
    if not roi.aligned:
        sides = np.maximum(sides, np.float32(1))  # onnxruntime's "malformed RoIs are 1x1"
    if roi.sampling_ratio > 0:
        points = np.full(len(boxes), roi.sampling_ratio**2, np.int64)
    else:
        grid = np.ceil(sides / np.asarray([out_w, out_h], np.float32)).astype(np.int64)
        points = grid[:, 0] * grid[:, 1]
    return 4 * out_h * out_w * np.maximum(points, 1)


def _bin_span(cells: np.ndarray, bins: int) -> np.ndarray:
    """(K,) int64: the cells ``bins`` MaxRoiPool bins read along one axis of a box ``cells`` long; bin
    ``p`` spans ``floor(p x size)`` to ``ceil((p + 1) x size)``, ``size = cells / bins``."""
    size = (cells.astype(np.float32) / np.float32(bins))[:, None]
    p = np.arange(bins, dtype=np.float32)[None, :]
    return (np.ceil((p + 1) * size) - np.floor(p * size)).sum(axis=1).astype(np.int64)


def check_roi_cost(
    boxes: np.ndarray, roi: RoISettings, max_cost: int, name: Callable[[int], str] = box_name
) -> None:
    """Raise ``LimitExceeded`` (422) when a request's boxes together cost more than ``max_cost``.

    ``boxes``: every box of the request, (K, 4) in the input frame, through ``check_region_inputs``
    first; ``name(row)`` says which box the client sent as row ``row``, to name the costliest.
    """
    if len(boxes) == 0:
        return
    costs = roi_box_costs(boxes, roi)
    total = int(costs.sum())
    if total > max_cost:
        worst = int(np.argmax(costs))
        by_size = roi.op == "MaxRoiPool" or roi.sampling_ratio == 0
        raise LimitExceeded(
            f"{len(boxes)} boxes have an RoI cost of {total}, over the limit of {max_cost} per request "
            "(max_request_roi_cost): a box costs the input cells the model's RoI pooling reads for it, per "
            f"channel{', more the larger the box' if by_size else ''}; the costliest, {name(worst)}, costs "
            f"{int(costs[worst])}. Send fewer{' or smaller' if by_size else ''} boxes"
        )
