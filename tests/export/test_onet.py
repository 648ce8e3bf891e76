"""MTCNN's pretrained ONet: weights from facenet-pytorch's wheel, export with parity, the shipped entries."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from poolserve.export.onet_cases import classifier_cases
from poolserve.export.onet_entries import (
    CLASSIFIER_NAME,
    ONET_WEIGHTS,
    REGIONS_NAME,
    TOLERANCE,
    export_onet_entries,
    pretrained_onet,
)
from poolserve.export.onnx_export import ExportError
from poolserve.export.parity import compare
from poolserve.export.wheels import WheelError, WheelMember, read_member
from poolserve.models.onet import ONet, load_onet
from poolserve.repository.manifest import Manifest
from poolserve.repository.store import discover, read_manifest, verified_model_path

pytestmark = pytest.mark.parity

ROOT = Path(__file__).resolve().parents[2]
WHEEL_CACHE = ROOT / ".cache" / "wheels"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Manifest, Path]]:
    repository = tmp_path_factory.mktemp("onet")
    export_onet_entries(repository, WHEEL_CACHE)
    entries = {}
    for location in discover(repository):
        manifest = read_manifest(location)
        entries[location.name] = (manifest, verified_model_path(location, manifest))
    return entries


def test_the_wheels_state_dict_loads_strictly():
    data = read_member(ONET_WEIGHTS, WHEEL_CACHE).data
    state = torch.load(io.BytesIO(data), weights_only=True)
    assert set(state) == set(ONet().state_dict())  # facenet-pytorch's layer names, no more, no fewer
    model = load_onet(data)
    assert [m.ceil_mode for m in (model.pool1, model.pool2, model.pool3)] == [True, True, True]


def test_a_member_the_wheel_lacks_is_refused():
    missing = WheelMember.model_validate(
        {**ONET_WEIGHTS.model_dump(), "member": "facenet_pytorch/data/xnet.pt"}
    )
    with pytest.raises(WheelError, match="has no"):
        read_member(missing, WHEEL_CACHE)


@pytest.mark.parametrize("name", [CLASSIFIER_NAME, REGIONS_NAME])
def test_export_is_parity_verified_and_licensed(exported: dict[str, tuple[Manifest, Path]], name: str):
    manifest, _ = exported[name]
    check = manifest.verification
    assert check.onnx_checker and check.max_abs_error <= check.tolerance == 1e-5
    assert manifest.io.scores_are_probabilities
    assert [o.name for o in manifest.io.extra_outputs] == ["box_regression", "landmarks"]
    assert manifest.feature_dim == 256
    assert manifest.provenance.license.startswith("MIT")
    assert "facenet-pytorch==2.6.0" in manifest.provenance.weights_origin
    assert ONET_WEIGHTS.sha256 in manifest.provenance.weights_origin
    preprocessing = manifest.preprocessing
    assert (preprocessing.color_mode, preprocessing.scale, preprocessing.mean, preprocessing.std) == (
        "RGB",
        1.0,
        [127.5] * 3,
        [128.0] * 3,
    )


def test_region_graph_cuts_boxes_from_the_photo(exported: dict[str, tuple[Manifest, Path]]):
    manifest, path = exported[REGIONS_NAME]
    assert manifest.roi is not None and manifest.verification.box_counts
    (roi,) = [n for n in onnx.load(str(path)).graph.node if n.op_type == "RoiAlign"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in roi.attribute}
    assert attributes["coordinate_transformation_mode"] == b"half_pixel"  # aligned=True, written explicitly
    assert (attributes["output_height"], attributes["output_width"]) == manifest.roi.output_size == (48, 48)
    assert attributes["spatial_scale"] == manifest.roi.spatial_scale == 1.0
    assert attributes["sampling_ratio"] == manifest.roi.sampling_ratio == 0  # adaptive


@pytest.mark.parametrize("name", [CLASSIFIER_NAME, REGIONS_NAME])
def test_pools_keep_ceil_mode(exported: dict[str, tuple[Manifest, Path]], name: str):
    pools = [n for n in onnx.load(str(exported[name][1])).graph.node if n.op_type == "MaxPool"]
    assert [
        onnx.helper.get_attribute_value(a) for n in pools for a in n.attribute if a.name == "ceil_mode"
    ] == [
        1,
        1,
        1,
    ]


def test_parity_catches_a_wrong_graph(exported: dict[str, tuple[Manifest, Path]]):
    graph = onnx.load(str(exported[CLASSIFIER_NAME][1]))
    for tensor in graph.graph.initializer:
        if tensor.name == "dense5.bias":
            tensor.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(tensor) + np.float32(1e-3), tensor.name)
            )
    with pytest.raises(ExportError, match="max abs error"):
        compare(graph, pretrained_onet(WHEEL_CACHE), classifier_cases(), TOLERANCE)


# The committed parity figure is one CPU's measurement: PyTorch's oneDNN and onnxruntime's MLAS choose
# vector kernels by ISA, which reorders float32 sums. Re-measured on two hosts and under oneDNN's AVX2 and
# SSE4.1 caps it ranged over 8.5e-7 to 1.28e-6 (this host's figures: bench/results/parity_isa.md). 2e-6
# allows about 4x that spread and stays 5x below the export's gate (1e-5), which every re-export passes
# anyway (a bias off by 1e-3 fails it: test_parity_catches_a_wrong_graph); the sha256 proves the bytes.
PARITY_REMEASURE_ABS = 2e-6


@pytest.mark.parametrize("name", [CLASSIFIER_NAME, REGIONS_NAME])
def test_shipped_entries_are_what_export_writes(exported: dict[str, tuple[Manifest, Path]], name: str):
    """``poolserve export-pretrained`` regenerates model_repository/'s files byte for byte; the manifest's
    parity figure, re-measured on this CPU, within :data:`PARITY_REMEASURE_ABS`."""
    shipped = read_manifest(next(e for e in discover(ROOT / "model_repository") if e.name == name))
    manifest, _ = exported[name]
    assert shipped.sha256 == manifest.sha256
    measured, committed = manifest.verification, shipped.verification
    assert measured.max_abs_error == pytest.approx(committed.max_abs_error, rel=0, abs=PARITY_REMEASURE_ABS)
    # Everything else in the verification record is a setting, not a measurement: exact.
    assert measured.model_copy(update={"max_abs_error": committed.max_abs_error}) == committed
