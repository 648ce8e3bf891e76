"""``poolserve import`` on a real third-party ONNX file (PaddleOCR's text-line orientation classifier, from
the rapidocr-onnxruntime wheel) and on small hand-built graphs that must be refused."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import uses_external_data
from pydantic import ValidationError
from typer.testing import CliRunner

from poolserve.cli import app
from poolserve.export import entry_writer
from poolserve.export.importer import ImportSpec, ModelImportError, import_model, spec_problems
from poolserve.export.inspection import InspectionError, inspect_file
from poolserve.export.wheels import read_member
from poolserve.repository.store import discover, read_manifest, verified_model_path

REPO_ROOT = Path(__file__).resolve().parents[2]
PPOCR_SPEC = REPO_ROOT / "export" / "specs" / "ppocr-textline-orientation.toml"
WHEEL_CACHE = REPO_ROOT / ".cache" / "wheels"
GRAY = {"color_mode": "L", "mean": [0.5], "std": [0.5]}
RGB = {"color_mode": "RGB", "mean": [0.5] * 3, "std": [0.5] * 3}


@pytest.fixture(scope="module")
def ppocr_spec() -> ImportSpec:
    return ImportSpec.from_file(PPOCR_SPEC)


@pytest.fixture(scope="module")
def ppocr_onnx(ppocr_spec: ImportSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert ppocr_spec.wheel is not None
    path = tmp_path_factory.mktemp("ppocr") / "cls.onnx"
    path.write_bytes(read_member(ppocr_spec.wheel, WHEEL_CACHE).data)
    return path


def _tiny_classifier(path: Path, softmax: bool) -> Path:
    """x (N, 3, 48, W) -> Conv to 2 channels -> GlobalAveragePool -> Flatten [-> Softmax]."""
    weights = np.random.default_rng(0).standard_normal((2, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["logits" if softmax else "scores"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 48, "w"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 2])],
        [numpy_helper.from_array(weights, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_inspection_reads_the_paddle_graph(ppocr_onnx: Path):
    _, summary = inspect_file(ppocr_onnx)
    assert summary.opset == 11
    assert summary.producer.startswith("PaddlePaddle")
    # Paddle writes -1 and "?" for dynamic axes; they get role names.
    assert [(t.name, t.shape) for t in summary.inputs] == [("x", ["batch", 3, "height", "width"])]
    assert [t.shape for t in summary.outputs] == [["batch", 2]]
    assert summary.pooling_ops == {"GlobalAveragePool": 10, "MaxPool": 1}
    assert summary.softmax_outputs == [summary.outputs[0].name]


def test_import_writes_a_verified_entry(ppocr_spec: ImportSpec, tmp_path: Path):
    manifest = import_model(ppocr_spec, tmp_path, wheel_cache=WHEEL_CACHE)
    (location,) = discover(tmp_path)
    assert read_manifest(location) == manifest
    model = verified_model_path(location, manifest)
    assert model.read_bytes() == read_member(ppocr_spec.wheel, WHEEL_CACHE).data  # type: ignore[arg-type]
    assert manifest.provenance.source == "imported"
    assert manifest.provenance.license.startswith("Apache-2.0")
    assert "rapidocr-onnxruntime==1.4.4" in manifest.provenance.weights_origin
    assert manifest.provenance.opset == 11 and manifest.provenance.torch_version is None
    assert manifest.io.scores_are_probabilities  # found the Softmax behind Paddle's Identity
    assert manifest.verification.max_abs_error <= manifest.verification.tolerance
    assert manifest.verification.batch_sizes == [1, 2]
    assert manifest.preprocessing.resize == "fit-height-pad-width"
    with pytest.raises(ModelImportError, match="already holds"):
        import_model(ppocr_spec, tmp_path, wheel_cache=WHEEL_CACHE)


def _spec(ppocr_spec: ImportSpec, **changes: object) -> ImportSpec:
    return ImportSpec.model_validate({**ppocr_spec.model_dump(), "wheel": None, **changes})


def test_softmax_is_detected_or_refused(ppocr_spec: ImportSpec, tmp_path: Path):
    with_softmax = _tiny_classifier(tmp_path / "soft.onnx", softmax=True)
    without = _tiny_classifier(tmp_path / "plain.onnx", softmax=False)
    repo = tmp_path / "repo"
    assert import_model(_spec(ppocr_spec, name="soft"), repo, with_softmax).io.scores_are_probabilities
    assert not import_model(_spec(ppocr_spec, name="plain"), repo, without).io.scores_are_probabilities
    with pytest.raises(ModelImportError, match="not distributions"):
        import_model(_spec(ppocr_spec, name="liar", scores_are_probabilities=True), repo, without)
    assert sorted(e.name for e in discover(repo)) == ["plain", "soft"]  # nothing left by the refusal


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"labels": ["a", "b", "c"]}, "the spec has 3 labels; output .scores. has 2 scores per image"),
        ({"preprocessing": {**GRAY, "height": 48, "width": 192}}, "axis 1"),
        ({"preprocessing": {**RGB, "height": 32, "width": 100}}, "axis 2"),
        ({"image_input": "image"}, "no image input named"),
        ({"scores_output": "logits"}, "no scores output named"),
    ],
)
def test_mismatched_spec_is_refused(ppocr_spec: ImportSpec, tmp_path: Path, changes: dict, message: str):
    model = _tiny_classifier(tmp_path / "tiny.onnx", softmax=True)
    onnx_model = onnx.load(model)
    onnx_model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 48  # a fixed height to contradict
    onnx.save(onnx_model, model)
    with pytest.raises(ModelImportError, match=message):
        import_model(_spec(ppocr_spec, **changes), tmp_path / "repo", model)
    assert not (tmp_path / "repo" / ppocr_spec.name / "1").exists()


def test_a_fixed_batch_graph_is_checked_at_its_batch(ppocr_spec: ImportSpec, tmp_path: Path):
    model = _tiny_classifier(tmp_path / "tiny.onnx", softmax=True)
    graph = onnx.load(model)
    graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # as many exporters write it
    onnx.save(graph, model)
    manifest = import_model(_spec(ppocr_spec, name="fixed"), tmp_path / "repo", model)
    assert manifest.io.image.shape[0] == 1  # the service slices batches to this size
    assert manifest.verification.batch_sizes == [1]
    assert "fixed batch" in manifest.verification.reference


@pytest.mark.parametrize("image_input", [None, "images"])
def test_a_region_model_is_refused_up_front(ppocr_spec: ImportSpec, tmp_path: Path, image_input: str | None):
    regions = REPO_ROOT / "model_repository" / "digits-roialign" / "1" / "model.onnx"
    spec = _spec(ppocr_spec, name="regions", image_input=image_input)
    with pytest.raises(ModelImportError) as refused:
        import_model(spec, tmp_path / "repo", regions)
    assert str(refused.value) == (
        "poolserve import takes single-input image classifiers; this graph has 3 inputs "
        "(images, boxes, box_batch_indices): export region models from PyTorch with "
        "`poolserve export-model --task region-features`"
    )
    assert not (tmp_path / "repo").exists()


def test_spec_errors_are_one_short_line_each(ppocr_onnx: Path, tmp_path: Path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "Not A Name"\ndescription = "d"\nlabels = ["one"]\ncolour = "L"\n'
        '[preprocessing]\ncolor_mode = "L"\nheight = 48\nmean = [0.5]\nstd = [0.5]\n'
    )
    failed = CliRunner().invoke(app, ["import", str(ppocr_onnx), "--spec", str(spec)])
    assert failed.exit_code == 1
    assert "pydantic" not in failed.output and "http" not in failed.output
    first, *problems = failed.stderr.splitlines()
    assert first == f"import failed: {spec} is not a valid import spec:"
    assert [p.split(":")[0] for p in problems] == [  # pydantic's wording after the colon may change
        "  spec field 'name'",
        "  spec field 'labels'",
        "  spec field 'preprocessing.width'",
        "  spec field 'license'",
        "  spec field 'colour'",
    ]
    assert problems[-1] == "  spec field 'colour': Extra inputs are not permitted"


def test_weights_in_a_file_beside_the_graph_are_imported_into_one_self_contained_entry(
    ppocr_spec: ImportSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """As torch's dynamo exporter writes ``model.onnx`` + ``model.onnx.data``; the command runs elsewhere."""
    inline = _tiny_classifier(tmp_path / "inline.onnx", softmax=False)
    exported = tmp_path / "exported"
    exported.mkdir()
    onnx.save(
        onnx.load(inline),
        exported / "m.onnx",
        save_as_external_data=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    assert (exported / "m.onnx.data").stat().st_size > 0
    monkeypatch.chdir(tmp_path)  # not the model's folder: the data file is found beside the model anyway
    manifest = import_model(_spec(ppocr_spec, name="external"), tmp_path / "repo", Path("exported/m.onnx"))
    (location,) = discover(tmp_path / "repo")
    assert sorted(p.name for p in location.directory.iterdir()) == ["manifest.json", "model.onnx"]
    served = onnx.load(verified_model_path(location, manifest), load_external_data=False)
    (weights,) = served.graph.initializer
    assert not uses_external_data(weights)  # inlined: nothing refers to the data file
    np.testing.assert_array_equal(
        numpy_helper.to_array(weights), numpy_helper.to_array(onnx.load(inline).graph.initializer[0])
    )

    (exported / "m.onnx.data").unlink()
    with pytest.raises(ModelImportError, match=r"weights m\.onnx keeps in another file"):
        import_model(_spec(ppocr_spec, name="external2"), tmp_path / "repo", exported / "m.onnx")


def test_garbage_is_not_an_onnx_model(ppocr_spec: ImportSpec, tmp_path: Path):
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"\x00not a protobuf\xff" * 10)
    with pytest.raises(InspectionError, match="not a valid ONNX model"):
        import_model(_spec(ppocr_spec), tmp_path / "repo", garbage)


def test_cli_inspects_and_imports(ppocr_onnx: Path, tmp_path: Path):
    runner = CliRunner()
    inspected = runner.invoke(app, ["import", str(ppocr_onnx), "--spec", str(PPOCR_SPEC), "--inspect"])
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.output)["pooling_ops"] == {"GlobalAveragePool": 10, "MaxPool": 1}
    without_spec = runner.invoke(app, ["import", str(ppocr_onnx), "--inspect"])  # before writing a spec
    assert without_spec.exit_code == 0 and json.loads(without_spec.output) == json.loads(inspected.output)
    no_spec = runner.invoke(app, ["import", str(ppocr_onnx), "--repository", str(tmp_path)])
    assert no_spec.exit_code == 2 and "needed to import" in no_spec.output
    args = ["import", str(ppocr_onnx), "--spec", str(PPOCR_SPEC), "--repository", str(tmp_path)]
    args += ["--name", "cls"]
    imported = runner.invoke(app, args)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output)["entry"] == str(tmp_path / "cls" / "1")
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already holds a model; pass --overwrite" in again.output


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (["0", "0"], "labels '0' appear more than once"),
        (["", ""], "label 1 of 2 is blank; every class needs a name"),
        (["0", " "], "label 2 of 2 is blank; every class needs a name"),
    ],
)
def test_labels_export_model_refuses_are_refused_with_its_message(
    ppocr_spec: ImportSpec, labels: list[str], problem: str
):
    with pytest.raises(ValidationError) as refused:
        _spec(ppocr_spec, labels=labels)
    assert spec_problems(refused.value) == [f"spec field 'labels': {problem}"]
    # tests/export/test_user_model.py holds export-model's side: the same words from the same check.


def _spec_file(ppocr_spec: ImportSpec, path: Path) -> Path:
    path.write_text(json.dumps(ppocr_spec.model_dump(mode="json", exclude={"wheel"})))
    return path


def test_a_bad_name_option_is_blamed_on_the_option_not_the_spec(ppocr_spec: ImportSpec, tmp_path: Path):
    model = _tiny_classifier(tmp_path / "tiny.onnx", softmax=True)
    spec = _spec_file(ppocr_spec, tmp_path / "spec.json")
    args = ["import", str(model), "--spec", str(spec), "--repository", str(tmp_path / "repo")]
    failed = CliRunner().invoke(app, [*args, "--name", "../evil"])
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [
        "import failed: --name '../evil': use lowercase letters, digits, '.', '_' and '-' (at most 64)"
    ]
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("inspect", [False, True])
@pytest.mark.parametrize(
    ("what", "problem"), [("missing", ": no such file"), ("folder", " is a folder, not an ONNX file")]
)
def test_a_model_path_that_is_no_file_says_so(
    ppocr_spec: ImportSpec, tmp_path: Path, inspect: bool, what: str, problem: str
):
    model = tmp_path / "model.onnx"
    if what == "folder":
        model.mkdir()
    args = ["import", str(model), "--spec", str(_spec_file(ppocr_spec, tmp_path / "spec.json"))]
    args += ["--repository", str(tmp_path / "repo")] + (["--inspect"] if inspect else [])
    failed = CliRunner().invoke(app, args)
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [f"import failed: {model}{problem}"]  # not "not a valid ONNX model"


def _disk_full(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("refusal", ["through-a-file", "disk-full"])
def test_an_unwritable_repository_is_named_and_left_as_it_was(
    ppocr_spec: ImportSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
):
    model = _tiny_classifier(tmp_path / "tiny.onnx", softmax=True)
    spec = _spec_file(ppocr_spec, tmp_path / "spec.json")
    (tmp_path / "a-file").write_text("")
    if refusal == "through-a-file":
        repository, reason = tmp_path / "a-file" / "repo", os.strerror(errno.ENOTDIR)
    else:  # the model file is written, then the manifest finds the disk full
        monkeypatch.setattr(entry_writer, "write_manifest", _disk_full)
        repository, reason = tmp_path / "repo", os.strerror(errno.ENOSPC)
    failed = CliRunner().invoke(
        app, ["import", str(model), "--spec", str(spec), "--repository", str(repository)]
    )
    assert failed.exit_code == 1
    entry = repository / ppocr_spec.name / "1"
    assert failed.stderr.splitlines() == [
        f"import failed: cannot write the model repository entry {entry}: {reason}"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "spec.json", "tiny.onnx"]
