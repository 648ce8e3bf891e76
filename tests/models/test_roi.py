"""The pure-torch RoI ops against the numpy-loop reference (torchvision CPU semantics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poolserve.models.roi import RoIAlign, RoIPool, roi_align, roi_pool
from tests.models.roi_cases import HAND_MADE, RoICase, features, random_case
from tests.models.roi_reference import roi_align_reference, roi_pool_reference

CASES = [*HAND_MADE, random_case(1, 1), random_case(2, 50)]
ALIGN_SETTINGS = [
    pytest.param((2, 2), 0.5, -1, False, id="adaptive-unaligned"),
    pytest.param((3, 4), 0.5, 2, True, id="sr2-aligned"),
    pytest.param((7, 7), 0.25, 0, True, id="7x7-adaptive-aligned"),
    pytest.param((1, 1), 1.0, 3, False, id="1x1-sr3"),
]
POOL_SETTINGS = [((2, 2), 0.5), ((3, 4), 0.5), ((7, 7), 0.25), ((1, 1), 1.0), ((5, 3), 1.0 / 3.0)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize(("output_size", "scale", "sampling_ratio", "aligned"), ALIGN_SETTINGS)
def test_roi_align_matches_reference(case: RoICase, output_size, scale, sampling_ratio, aligned):
    maps = features()
    got = roi_align(
        torch.from_numpy(maps),
        torch.from_numpy(case.boxes),
        torch.from_numpy(case.batch_indices),
        output_size,
        scale,
        sampling_ratio,
        aligned,
    )
    want = roi_align_reference(
        maps, case.boxes, case.batch_indices, output_size, scale, sampling_ratio, aligned
    )
    assert got.shape == want.shape
    # float32 vs the float64 reference; as in tests/export/test_roi_onnx.py, rounding is near 1e-7.
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize(("output_size", "scale"), POOL_SETTINGS)
def test_roi_pool_matches_reference_exactly(case: RoICase, output_size, scale):
    maps = features()
    got = roi_pool(
        torch.from_numpy(maps),
        torch.from_numpy(case.boxes),
        torch.from_numpy(case.batch_indices),
        output_size,
        scale,
    )
    want = roi_pool_reference(maps, case.boxes, case.batch_indices, output_size, scale)
    np.testing.assert_array_equal(got.numpy(), want)


def test_roi_pool_rounds_half_away_from_zero():
    # x1 * scale = 2.5 rounds to 3 (std::round), not 2 (torch.round): the first column must not be seen.
    maps = torch.zeros(1, 1, 4, 8)
    maps[0, 0, :, 2] = 5.0
    pooled = roi_pool(maps, torch.tensor([[5.0, 0.0, 12.0, 6.0]]), torch.tensor([0]), (1, 1), 0.5)
    assert pooled.item() == 0.0


@pytest.mark.parametrize(
    "module", [RoIAlign((3, 3), 0.5, 2, True), RoIPool((3, 3), 0.5)], ids=["align", "pool"]
)
def test_gradients_reach_the_features(module):
    maps = torch.from_numpy(features()).requires_grad_()
    case = random_case(3, 10)
    module(maps, torch.from_numpy(case.boxes), torch.from_numpy(case.batch_indices)).sum().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "module",
    [RoIAlign(3, spatial_scale=0.5, sampling_ratio=2, aligned=True), RoIPool(3, 0.5)],
    ids=["align", "pool"],
)
def test_torchvision_box_formats_give_the_same_result(module):
    """``forward(input, rois)`` with torchvision's (K, 5) tensor or per-image list equals the (K, 4) +
    indices form; an int ``output_size`` means a square, as in torchvision."""
    maps = torch.from_numpy(features())
    case = random_case(4, 12)
    boxes, indices = torch.from_numpy(case.boxes), torch.from_numpy(case.batch_indices)
    want = module(maps, boxes, indices)
    rois = torch.cat([indices.to(boxes.dtype)[:, None], boxes], dim=1)
    assert module.output_size == (3, 3)
    assert torch.equal(module(maps, rois), want)
    per_image = [boxes[indices == i] for i in range(maps.shape[0])]
    order = torch.cat([torch.nonzero(indices == i).flatten() for i in range(maps.shape[0])])
    assert torch.equal(module(maps, per_image), want[order])
    with pytest.raises(ValueError, match=r"\(K, 5\)"):
        module(maps, boxes)
