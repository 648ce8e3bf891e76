"""poolserve export --quantize: shipped digit models from their committed float32 entries, calibrated on
training-split images, scored on the held-out split; the manifest records all of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
import typer

from poolserve.export.quantize_shipped import quantize_shipped
from poolserve.export.verify import verify_entry
from poolserve.models.command_options import selected_models
from poolserve.repository.store import EntryLocation, read_manifest, verified_model_path

ROOT = Path(__file__).resolve().parents[2]
# The most held-out accuracy a variant may lose before we would notice in review; figures in docs/models.md.
MAX_ACCURACY_LOSS = {"int8": 0.02, "fp16": 0.001}


@pytest.mark.parametrize(
    ("name", "mode"), [("lenet5-mnist", "int8"), ("lenet5-mnist", "fp16"), ("digits-roipool", "int8")]
)
def test_shipped_variant_is_written_scored_and_auditable(tmp_path: Path, name: str, mode: str):
    shutil.copytree(ROOT / "model_repository" / name, tmp_path / name)
    entry = quantize_shipped(name, mode, tmp_path)  # type: ignore[arg-type]

    location = EntryLocation(f"{name}-{mode}", 1, tmp_path / f"{name}-{mode}" / "1")
    manifest = read_manifest(location)
    assert manifest == entry.manifest
    source = read_manifest(EntryLocation(name, 1, tmp_path / name / "1"))
    quantization = manifest.quantization
    assert quantization is not None and quantization.float32_sha256 == source.sha256
    if mode == "int8":
        assert quantization.calibration is not None and "training-split" in quantization.calibration
    assert "held-out" in quantization.compared_on
    assert quantization.top1_agreement is not None
    assert quantization.top1_agreement >= (quantization.agreement_floor or 1.0)
    assert manifest.verification.max_abs_error <= manifest.verification.tolerance
    assert manifest.evaluations[0].command == f"poolserve export --quantize {mode} {name}"
    assert entry.float32_accuracy - entry.accuracy.value <= MAX_ACCURACY_LOSS[mode]
    # `poolserve verify` re-measures the recorded held-out figure on the written file.
    audit = verify_entry(tmp_path, f"{name}-{mode}")
    assert audit.ok and audit.measured(manifest.evaluations[0].metric) == entry.accuracy.value
    ops = {node.op_type for node in onnx.load(verified_model_path(location, manifest)).graph.node}
    assert ("QuantizeLinear" in ops) == (mode == "int8")
    if name == "digits-roipool":
        assert "MaxRoiPool" in ops and any("MaxRoiPool" in n for n in quantization.kept_float32)


def test_verify_accepts_variant_names_and_export_does_not():
    assert selected_models(["lenet5-mnist-int8", "digits-roipool-fp16"], variants=True) == [
        "lenet5-mnist-int8",
        "digits-roipool-fp16",
    ]
    with pytest.raises(typer.BadParameter, match="lenet5-mnist-int4"):
        selected_models(["lenet5-mnist-int4"], variants=True)
    with pytest.raises(typer.BadParameter, match="lenet5-mnist-int8"):
        selected_models(["lenet5-mnist-int8"])  # `poolserve export` writes variants only through --quantize
