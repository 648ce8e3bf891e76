"""``check_region_inputs`` against onnxruntime itself: whatever it lets through runs on every shipped region
model without an exception and with finite outputs; what it refuses is what would overflow, spin or crash.
``roi_box_costs`` and ``check_roi_cost``: what each box costs, never more than the policy's bound, and a
request's boxes refused together past the budget.

Refused inputs are never run: they are the ones that take onnxruntime down (inverted boxes in a batch,
batch indices past the images, boxes thousands of times their image's size).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolserve.repository.manifest import Manifest
from poolserve.repository.store import discover, latest_versions, read_manifest, verified_model_path
from poolserve.service.errors import InvalidField, LimitExceeded
from poolserve.service.runtime.region_inputs import (
    MAX_OVERHANG,
    BoxFrame,
    check_region_inputs,
    check_roi_cost,
    roi_box_costs,
    roi_cost_bound,
)
from tests.service.conftest import REPOSITORY

# Every region model in the shipped repository, the converted ONet included.
REGION_MODELS = ["digits-roialign", "digits-roipool", "mtcnn-onet-regions"]


@dataclass(frozen=True)
class RegionModel:
    manifest: Manifest
    session: ort.InferenceSession

    @property
    def frame(self) -> BoxFrame:
        return BoxFrame.of(self.manifest)

    def run(self, boxes: np.ndarray, indices: np.ndarray, images: int = 2) -> list[np.ndarray]:
        io, spec = self.manifest.io, self.manifest.preprocessing
        assert io.boxes is not None and io.box_batch_indices is not None
        pixels = np.random.default_rng(0).standard_normal((images, spec.channels, spec.height, spec.width))
        feeds = {
            io.image.name: pixels.astype(np.float32),
            io.boxes.name: boxes.astype(np.float32),
            io.box_batch_indices.name: indices.astype(np.int64),
        }
        return [np.asarray(o) for o in self.session.run(None, feeds)]


@pytest.fixture(scope="module", params=REGION_MODELS)
def model(request: pytest.FixtureRequest) -> Iterator[RegionModel]:
    (location,) = [loc for loc in latest_versions(discover(REPOSITORY)) if loc.name == request.param]
    manifest = read_manifest(location)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(verified_model_path(location, manifest)), options, providers=["CPUExecutionProvider"]
    )
    yield RegionModel(manifest, session)


INF, NAN = float("inf"), float("nan")
NORMAL = (0.1, 0.1, 0.6, 0.7)  # fractions of the frame's width and height

# (boxes as fractions of the frame, accepted?): one hostile box alone, then beside a normal one.
BOXES: dict[str, tuple[tuple[float, float, float, float], bool]] = {
    "normal": (NORMAL, True),
    "whole frame": ((0, 0, 1, 1), True),
    "degenerate point": ((0.5, 0.5, 0.5, 0.5), True),
    "zero width": ((0.3, 0.1, 0.3, 0.9), True),
    "zero height": ((0.1, 0.3, 0.9, 0.3), True),
    "tiny": ((0.5, 0.5, 0.5001, 0.5001), True),
    "overhanging within the margin": (
        (-MAX_OVERHANG, -MAX_OVERHANG, 1 + MAX_OVERHANG, 1 + MAX_OVERHANG),
        True,
    ),
    "touching the right edge": ((1, 0, 1, 1), True),
    "past the margin": ((-MAX_OVERHANG - 0.01, 0, 1, 1), False),
    "huge (case 1)": ((0, 0, 100, 100), False),
    "huge (case 2)": ((0, 0, 200, 200), False),
    "ten times the image (case 5)": ((0, 0, 10, 10), False),
    "inverted x (case 3)": ((0.5, 0.05, 0.05, 0.6), False),
    "inverted y": ((0.05, 0.6, 0.5, 0.05), False),
    "negative, wholly outside": ((-0.5, -0.5, -0.1, -0.1), False),
    "far outside": ((5, 5, 6, 6), False),
    "far negative": ((-1e6, -1e6, 0.5, 0.5), False),
    "NaN": ((NAN, 0, 0.5, 0.5), False),
    "all NaN": ((NAN, NAN, NAN, NAN), False),
    "inf": ((0, 0, INF, 0.5), False),
    "-inf": ((-INF, 0, 0.5, 0.5), False),
    "inf everywhere": ((-INF, -INF, INF, INF), False),
    "float32 max": ((0, 0, 3.4e38, 3.4e38), False),
}


def in_frame(model: RegionModel, fractions: list[tuple[float, float, float, float]]) -> np.ndarray:
    frame = model.frame
    scale = np.asarray([frame.width, frame.height, frame.width, frame.height])
    with np.errstate(invalid="ignore", over="ignore"):
        return (np.asarray(fractions, np.float64).reshape(-1, 4) * scale).astype(np.float32)


def accepted(model: RegionModel, boxes: np.ndarray, indices: np.ndarray, images: int = 2) -> bool:
    try:
        check_region_inputs(boxes, indices, images, model.frame)
    except InvalidField:
        return False
    return True


def run_checked(model: RegionModel, boxes: np.ndarray, indices: np.ndarray, images: int = 2) -> bool:
    """Validate, and run onnxruntime on what passes; its outputs must be finite, one row per box."""
    if not accepted(model, boxes, indices, images):
        return False
    for output in model.run(boxes, indices, images):
        assert len(output) == len(boxes) and np.isfinite(output).all()
    return True


@pytest.mark.parametrize("case", list(BOXES))
def test_each_box_alone_and_beside_a_normal_one(model: RegionModel, case: str) -> None:
    fractions, expected = BOXES[case]
    alone = in_frame(model, [fractions])
    assert run_checked(model, alone, np.zeros(1, np.int64)) is expected
    # Case 3's batch: the hostile box first, a normal one after it, on two images.
    mixed = in_frame(model, [fractions, NORMAL, NORMAL])
    assert run_checked(model, mixed, np.asarray([0, 0, 1])) is expected


@pytest.mark.parametrize(
    ("indices", "expected"),
    [([0, 1], True), ([1, 1], True), ([0, 2], False), ([-1, 0], False), ([0, 2**62], False)],
)
def test_batch_indices_must_name_an_image(model: RegionModel, indices: list[int], expected: bool) -> None:
    boxes = in_frame(model, [NORMAL, NORMAL])
    assert run_checked(model, boxes, np.asarray(indices, np.int64)) is expected


@pytest.mark.parametrize(
    ("boxes", "indices"),
    [
        (np.zeros((2, 4), np.float32), np.zeros(3, np.int64)),  # a batch index short
        (np.zeros((2, 3), np.float32), np.zeros(2, np.int64)),  # three coordinates
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32)),  # indices not integers
    ],
)
def test_malformed_roi_tensors_are_refused(
    model: RegionModel, boxes: np.ndarray, indices: np.ndarray
) -> None:
    assert not accepted(model, boxes, indices)


def test_the_refusal_names_the_box(model: RegionModel) -> None:
    boxes = in_frame(model, [NORMAL, (0, 0, 100, 100)])
    with pytest.raises(InvalidField, match=r"image 0's box 1 .*reaches past its image"):
        check_region_inputs(boxes, np.zeros(2, np.int64), 1, model.frame, lambda r: f"image 0's box {r}")


# Coordinates from everywhere a client could reach: inside, the margin, far out, huge, non-finite.
coordinate = st.one_of(
    st.floats(-0.5, 1.5),
    st.sampled_from([0.0, 1.0, -MAX_OVERHANG, 1 + MAX_OVERHANG]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)
box = st.tuples(coordinate, coordinate, coordinate, coordinate)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxes=st.lists(box, min_size=1, max_size=4), images=st.integers(1, 2), data=st.data())
def test_whatever_passes_runs(
    model: RegionModel, boxes: list[tuple[float, float, float, float]], images: int, data: st.DataObject
) -> None:
    indices = np.asarray(data.draw(st.lists(st.integers(-1, 2), min_size=len(boxes), max_size=len(boxes))))
    frame_boxes = in_frame(model, boxes)
    passed = run_checked(model, frame_boxes, indices, images)
    within = (
        np.isfinite(frame_boxes).all()
        and (frame_boxes[:, 2] >= frame_boxes[:, 0]).all()
        and (frame_boxes[:, 3] >= frame_boxes[:, 1]).all()
        and ((indices >= 0) & (indices < images)).all()
    )
    assert passed <= within  # nothing outside the policy ever passes


# By hand: RoiAlign reads 4 cells per sample, out_h * out_w bins, grid^2 samples per bin (sampling_ratio,
# or ceil(1.5 * frame side * spatial_scale / out side) for 0); MaxRoiPool the box's feature-map cells,
# (ceil(1.5 * 112 * 0.25) + 1 + 7)^2 with the rounding and the bins' widening.
EXPECTED_BOUND = {
    "digits-roialign": 4 * 7 * 7 * 2 * 2,
    "digits-roipool": (42 + 1 + 7) ** 2,
    "mtcnn-onet-regions": 4 * 48 * 48 * 16 * 16,
}


def test_the_stated_cost_bound(model: RegionModel) -> None:
    roi = model.manifest.roi
    assert roi is not None
    assert roi_cost_bound(roi, model.frame) == EXPECTED_BOUND[model.manifest.name]


# By hand, boxes as (x1, y1, x2, y2) in the input frame and what each costs (cells read per channel).
# mtcnn-onet-regions: RoiAlign 48x48 bins, sampling_ratio 0, so 4 * 48 * 48 * ceil(w / 48) * ceil(h / 48);
# digits-roialign: sampling_ratio 2, every box 4 * 7 * 7 * 2 * 2; digits-roipool: MaxRoiPool at 1/4 scale,
# the box rounded to the map, + 1 cell, 7 bins per axis each from floor(p * size) to ceil((p + 1) * size).
EXPECTED_COSTS: dict[str, list[tuple[tuple[float, float, float, float], int]]] = {
    "mtcnn-onet-regions": [
        ((100, 100, 100, 100), 4 * 48 * 48),  # a point: one sample per bin still
        ((0, 0, 48, 48), 4 * 48 * 48),
        ((0, 0, 48.5, 48), 4 * 48 * 48 * 2),
        ((0, 0, 96, 96), 4 * 48 * 48 * 4),
        ((0, 0, 144, 144), 4 * 48 * 48 * 9),
        ((0, 0, 145, 144), 4 * 48 * 48 * 12),
        ((10, 20, 30, 500), 4 * 48 * 48 * 10),
        ((0, 0, 512, 512), 4 * 48 * 48 * 11 * 11),
        ((-128, -128, 640, 640), 4 * 48 * 48 * 16 * 16),
    ],
    "digits-roialign": [
        ((5, 5, 5, 5), 784),
        ((0, 0, 112, 112), 784),
        ((-28, -28, 140, 140), 784),
    ],
    "digits-roipool": [
        ((5, 5, 5, 5), 7 * 7),  # one cell: seven bins of one cell each way
        ((0, 0, 112, 112), 35 * 35),  # 29 cells: bins of 4.14, each reading 5
        ((-28, -28, 140, 140), 49 * 49),  # 43 cells: bins of 6.14, each reading 7
        ((0, 0, 26, 1), 14 * 7),  # 8 x 1 cells: bins of 8 / 7 cells read 2 across, 1 down
    ],
}


def test_what_each_box_costs(model: RegionModel) -> None:
    roi, cases = model.manifest.roi, EXPECTED_COSTS[model.manifest.name]
    assert roi is not None
    boxes = np.asarray([box for box, _ in cases], np.float32)
    check_region_inputs(boxes, np.zeros(len(boxes), np.int64), 1, model.frame)  # all within the policy
    assert roi_box_costs(boxes, roi).tolist() == [cost for _, cost in cases]
    assert roi_box_costs(np.zeros((0, 4), np.float32), roi).tolist() == []


@settings(max_examples=200, derandomize=True, deadline=None)
@given(corners=st.lists(st.tuples(*[st.floats(-MAX_OVERHANG, 1 + MAX_OVERHANG)] * 4), min_size=1, max_size=8))
def test_no_box_the_policy_allows_costs_more_than_the_bound(
    model: RegionModel, corners: list[tuple[float, float, float, float]]
) -> None:
    roi = model.manifest.roi
    assert roi is not None
    raw = np.asarray(corners, np.float64)
    ordered = np.concatenate([np.minimum(raw[:, :2], raw[:, 2:]), np.maximum(raw[:, :2], raw[:, 2:])], axis=1)
    boxes = in_frame(model, [tuple(b) for b in ordered])
    if not accepted(model, boxes, np.zeros(len(boxes), np.int64), 1):
        return  # wholly outside the image: refused before it is priced
    costs = roi_box_costs(boxes, roi)
    assert (costs >= 1).all() and (costs <= roi_cost_bound(roi, model.frame)).all()


def test_a_request_just_over_the_budget_is_refused_naming_its_costliest_box(model: RegionModel) -> None:
    roi = model.manifest.roi
    assert roi is not None
    boxes = in_frame(
        model, [NORMAL, (-MAX_OVERHANG, -MAX_OVERHANG, 1 + MAX_OVERHANG, 1 + MAX_OVERHANG), NORMAL]
    )
    total = int(roi_box_costs(boxes, roi).sum())
    check_roi_cost(boxes, roi, total)  # exactly at the budget: passes
    check_roi_cost(np.zeros((0, 4), np.float32), roi, 1)  # no boxes cost nothing
    with pytest.raises(LimitExceeded) as refused:
        check_roi_cost(boxes, roi, total - 1, lambda r: f"image 0's box {r}")
    detail = refused.value.detail
    assert detail.startswith(
        f"3 boxes have an RoI cost of {total}, over the limit of {total - 1} per request"
    )
    assert "(max_request_roi_cost)" in detail
    # the largest box, where box size matters; with a fixed sampling grid every box costs the same
    costliest = 1 if roi.op == "MaxRoiPool" or roi.sampling_ratio == 0 else 0
    assert f"the costliest, image 0's box {costliest}, costs {roi_box_costs(boxes, roi)[costliest]}" in detail


def test_what_passes_the_budget_runs(model: RegionModel) -> None:
    """The budget only refuses; what it lets through is what onnxruntime runs, unchanged."""
    roi = model.manifest.roi
    assert roi is not None
    boxes = in_frame(model, [NORMAL, (0, 0, 1, 1), (0.5, 0.5, 0.5, 0.5)])
    indices = np.asarray([0, 1, 1])
    check_roi_cost(boxes, roi, int(roi_box_costs(boxes, roi).sum()))
    assert run_checked(model, boxes, indices)
