"""The one manifest builder and the staged writer: every committed entry is a description the builder
reproduces exactly, and a refused write leaves the repository as it was."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from poolserve.export.entry_writer import EntryExists, write_entry
from poolserve.export.manifest_builder import described, exported_io
from poolserve.repository.manifest import Task
from poolserve.repository.store import EntryLocation, read_manifest

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
NAMES = sorted(path.name for path in REPOSITORY.iterdir() if (path / "1" / "manifest.json").is_file())


def _manifest(name: str):
    return read_manifest(EntryLocation(name, 1, REPOSITORY / name / "1"))


@pytest.mark.parametrize("name", NAMES)
def test_every_committed_manifest_is_what_the_builder_writes(name: str):
    """Trained, converted and imported entries alike: task and feature width derive from roi and io."""
    manifest = _manifest(name)
    description = described(manifest)
    assert description.task is manifest.task
    assert description.manifest(manifest.sha256) == manifest


def test_a_manifest_whose_task_disagrees_with_its_roi_is_refused():
    manifest = _manifest("digits-roialign")
    with pytest.raises(ValueError, match="disagree"):
        described(manifest.model_copy(update={"feature_dim": 7}))


@pytest.mark.parametrize(
    ("task", "classes", "feature_dim", "outputs"),
    [
        (Task.CLASSIFICATION, 10, 0, {"logits": ["batch", 10]}),
        (Task.REGION_FEATURES, 11, 128, {"features": ["boxes", 128], "logits": ["boxes", 11]}),
        (Task.REGION_FEATURES, 0, 64, {"features": ["boxes", 64]}),
    ],
)
def test_exported_io_names_the_exporters_tensors(task, classes, feature_dim, outputs):
    io = exported_io(task, (1, 28, 28), classes, feature_dim)
    assert io.image.name == "images" and io.image.shape == ["batch", 1, 28, 28]
    declared = {spec.name: spec.shape for spec in (io.scores, io.features) if spec is not None}
    assert declared == outputs
    assert (io.boxes is not None) == (task is Task.REGION_FEATURES)


def test_written_entry_hashes_its_file_and_refuses_to_overwrite(tmp_path: Path):
    source = REPOSITORY / "lenet5-mnist" / "1" / "model.onnx"
    model = source.read_bytes()
    description = described(_manifest("lenet5-mnist"))
    manifest = write_entry(tmp_path, model, description)
    written = tmp_path / "lenet5-mnist" / "1"
    assert manifest.sha256 == hashlib.sha256(model).hexdigest()
    assert read_manifest(EntryLocation("lenet5-mnist", 1, written)) == manifest
    with pytest.raises(EntryExists):
        write_entry(tmp_path, b"other bytes", description)
    assert (written / "model.onnx").read_bytes() == model


def test_an_invalid_manifest_leaves_nothing_behind(tmp_path: Path):
    description = replace(described(_manifest("digits-roipool")), labels=[])  # scores without labels
    with pytest.raises(ValidationError):
        write_entry(tmp_path, b"model", description)
    assert list(tmp_path.rglob("*")) == []  # not even the name folder the write created


def test_the_builder_writer_and_importer_load_without_torch():
    modules = "poolserve.export.manifest_builder, poolserve.export.entry_writer, poolserve.export.importer"
    code = f"import sys, {modules}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
