"""The committed default models: manifests, hashes, parity of their architectures, held-out accuracy."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from poolserve.export.digit_cases import classifier_cases, region_cases
from poolserve.export.onnx_export import CLASSIFIER_SIGNATURE, REGION_SIGNATURE, export_onnx
from poolserve.export.parity import check_graph, compare
from poolserve.export.verify import verify_entry
from poolserve.models.canvas import compose_canvases
from poolserve.models.mnist import held_out_split
from poolserve.models.zoo import SPECS
from poolserve.repository.manifest import Manifest, Task
from poolserve.repository.store import (
    EntryLocation,
    RepositoryError,
    read_manifest,
    verified_model_path,
    write_manifest,
)

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
NAMES = sorted(SPECS)


@pytest.fixture(scope="module")
def splits():
    return held_out_split()


def _location(name: str, root: Path = REPOSITORY) -> EntryLocation:
    return EntryLocation(name, 1, root / name / "1")


@pytest.mark.parametrize("name", NAMES)
def test_manifest_round_trips_and_hash_matches(name: str, tmp_path: Path):
    manifest = read_manifest(_location(name))
    verified_model_path(_location(name), manifest)
    write_manifest(tmp_path, manifest)
    assert Manifest.model_validate_json((tmp_path / "manifest.json").read_bytes()) == manifest
    # The committed figure as written (nothing re-measured): shipped exports stay 10x inside the 1e-4 gate.
    assert manifest.verification.max_abs_error <= 1e-5
    assert manifest.verification.batch_sizes == [1, 2, 7]
    if manifest.task is Task.REGION_FEATURES:
        assert manifest.verification.box_counts == [0, 1, 50]


@pytest.mark.parametrize("name", NAMES)
def test_corrupted_model_file_is_detected(name: str, tmp_path: Path):
    copy = tmp_path / name / "1"
    shutil.copytree(REPOSITORY / name / "1", copy)
    model = copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    location = _location(name, tmp_path)
    with pytest.raises(RepositoryError, match="sha256"):
        verified_model_path(location, read_manifest(location))


@pytest.mark.parametrize("name", NAMES)
def test_graph_io_is_what_the_manifest_says(name: str):
    manifest = read_manifest(_location(name))
    proto = onnx.load(REPOSITORY / name / "1" / "model.onnx")
    check_graph(proto)
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {
        manifest.provenance.opset
    }
    specs = [
        manifest.io.image,
        manifest.io.boxes,
        manifest.io.box_batch_indices,
        manifest.io.features,
        manifest.io.scores,
    ]
    declared = {v.name: v for v in [*proto.graph.input, *proto.graph.output]}
    for spec in filter(None, specs):
        dims = [d.dim_param or d.dim_value for d in declared[spec.name].type.tensor_type.shape.dim]
        assert dims == spec.shape, spec.name


# Floors below which a retrained model must not ship, per recorded figure: held-out, shifted held-out
# (wider distortions than training, loose boxes for region models; docs/models.md), and for region models
# ceilings on the background false-positive rate over boxes on empty canvas areas. The aims are 0.97 /
# 0.93 (LeNet-5), 0.97 / 0.90 (GAP), 0.93 / 0.90 (region models); where the shipped weights fall short,
# the floor is what they reach, rounded down, so that a retrain can only move them up.
MINIMUM = {
    "lenet5-mnist": {"accuracy": 0.97, "shifted_accuracy": 0.80},
    "lenet5-gap-mnist": {"accuracy": 0.96, "shifted_accuracy": 0.79},
    "digits-roialign": {"region_accuracy": 0.95, "shifted_region_accuracy": 0.70},
    "digits-roipool": {"region_accuracy": 0.93, "shifted_region_accuracy": 0.71},
}
MAXIMUM = {
    name: {"background_false_positive_rate": 0.05, "shifted_background_false_positive_rate": 0.05}
    for name in ("digits-roialign", "digits-roipool")
}


@pytest.mark.parametrize("name", NAMES)
def test_manifest_records_held_out_and_shifted_figures(name: str):
    manifest = read_manifest(_location(name))
    recorded = [e.metric for e in manifest.evaluations]
    assert sorted(recorded) == sorted([*MINIMUM[name], *MAXIMUM.get(name, {})])
    held = [e for e in manifest.evaluations if not e.metric.startswith("shifted_")]
    shifted = [e for e in manifest.evaluations if e.metric.startswith("shifted_")]
    assert len(held) == len(shifted)
    assert all("held-out test" in e.split for e in held)
    assert all(e.split.startswith("shifted held-out test") for e in shifted)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_recorded_figures_are_re_measured(name: str):
    """Runs the committed ONNX file with onnxruntime on the held-out and shifted held-out sets, as
    ``poolserve verify`` does: each manifest figure within one sample (``EVALUATION_SAMPLE_SLACK``: a
    near-tie may flip on another CPU)."""
    result = verify_entry(REPOSITORY, name)
    assert result.ok, result.summary()
    for metric, floor in MINIMUM[name].items():
        assert result.measured(metric) >= floor, (metric, result.summary())
    for metric, ceiling in MAXIMUM.get(name, {}).items():
        assert result.measured(metric) <= ceiling, (metric, result.summary())


@pytest.mark.parity
@pytest.mark.parametrize("name", NAMES)
def test_architecture_exports_with_parity(name: str, splits):
    """Fresh seeded weights (not the shipped ones): the architecture itself exports faithfully."""
    torch.manual_seed(0)
    spec = SPECS[name]
    model = spec.build().eval()
    if spec.task == "classification":
        cases, signature = classifier_cases(splits.test.images, spec.input_size), CLASSIFIER_SIGNATURE
    else:
        canvases = compose_canvases(splits.test, 7, seed=3)
        cases, signature = region_cases(canvases, spec.input_size), REGION_SIGNATURE
    example = tuple(torch.from_numpy(v) for v in cases[-1].values())
    proto = export_onnx(model, example, signature)
    # Measured 1.5e-8 to 1.2e-7 here under three oneDNN ISAs (bench/results/parity_isa.md): 1e-5 leaves
    # two orders of magnitude for other CPUs and still fails a wrongly exported op (errors of order 1).
    result = compare(proto, model, cases, tolerance=1e-5)
    assert np.isfinite(result.max_abs_error)
