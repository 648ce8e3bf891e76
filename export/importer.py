"""``poolserve import``: an ONNX classifier trained elsewhere becomes a repository entry.

ONNX says what the graph is (inspection.py); the spec says what it cannot: name, labels, preprocessing,
licence and origin. Nothing is written until the file passes onnx's full checker, loads in onnxruntime,
runs at batch 1 and 2, and is self-consistent: each row of a batch equals that sample run alone, and a
repeated run is identical. The model file is written byte for byte (``poolserve.export.entry_writer``); its
sha256 goes in the manifest.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx.external_data_helper import load_external_data_for_model, uses_external_data
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from poolserve.export.entry_writer import EntryExists, EntryNotWritten, write_entry
from poolserve.export.inspection import GraphSummary, inspect_bytes, require_model_file
from poolserve.export.manifest_builder import EntryDescription, check_entry_name, check_labels, model_io
from poolserve.export.wheels import DEFAULT_WHEEL_CACHE, WheelMember, read_member
from poolserve.repository.manifest import (
    BatchingDefaults,
    Manifest,
    Preprocessing,
    Provenance,
    TensorSpec,
    Verification,
)

_SELF_CHECK_SEED = 0
_PROBABILITY_TOLERANCE = 1e-4
_ROI_OPS = ("RoiAlign", "MaxRoiPool")


class ModelImportError(Exception):
    """The file or its spec cannot become an entry; the message says why."""


class ImportSpec(BaseModel):
    """The facts about an imported classifier that its ONNX file cannot tell (a JSON or TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Names and labels are checked as export-model checks them, so the two commands refuse alike.
    name: Annotated[str, AfterValidator(check_entry_name)]
    version: int = Field(default=1, ge=1)
    description: str
    labels: Annotated[list[str], Field(min_length=2), AfterValidator(check_labels)]
    preprocessing: Preprocessing
    license: str
    weights_origin: str | None = None  # defaults to the wheel's origin, or the file's name
    image_input: str | None = None  # the graph's one input, checked by name when given
    scores_output: str | None = None  # graph output holding the scores; defaults to the first
    scores_are_probabilities: bool | None = None  # None: true iff a Softmax produces the scores
    tolerance: float = Field(default=1e-5, gt=0)
    batching: BatchingDefaults = BatchingDefaults()
    wheel: WheelMember | None = None  # where to fetch the ONNX file when no path is given

    @classmethod
    def from_file(cls, path: Path, overrides: Mapping[str, object] | None = None) -> ImportSpec:
        """The spec in ``path``, with ``overrides`` (the command's ``--name``, ``--version``) in place of
        its fields: a bad name in the file does not matter when the command gives another."""
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return cls.model_validate({**raw, **(overrides or {})} if isinstance(raw, dict) else raw)


def spec_problems(exc: ValidationError, overrides: Mapping[str, object] | None = None) -> list[str]:
    """One short line per spec error (``spec field 'labels': ...``), without pydantic's links. An error
    in a field ``overrides`` gave is the option's (``--name '../x': ...``), not the spec file's."""
    lines = []
    for error in exc.errors(include_url=False):
        # A check of ours raising ValueError: its message alone, without pydantic's "Value error, ".
        message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        field = str(error["loc"][0]) if error["loc"] else ""
        if overrides and field in overrides:
            lines.append(f"--{field} {overrides[field]!r}: {message}")
            continue
        where = ".".join(str(part) for part in error["loc"])
        lines.append(f"spec field {where!r}: {message}" if where else f"spec: {message}")
    return lines


@dataclass(frozen=True)
class SelfCheck:
    max_abs_error: float  # batched rows vs the same samples run alone
    repeat_identical: bool
    batch_sizes: list[int]


def _pick(specs: list[TensorSpec], wanted: str | None, role: str) -> TensorSpec:
    if wanted is None:
        return specs[0]  # validate() has refused graphs without exactly one input
    for spec in specs:
        if spec.name == wanted:
            return spec
    raise ModelImportError(f"the graph has no {role} named {wanted!r}; it has {[s.name for s in specs]}")


def _check_image_input(image: TensorSpec, prep: Preprocessing) -> None:
    if image.dtype != "float32" or len(image.shape) != 4:
        raise ModelImportError(f"input {image.name!r} is {image.dtype} {image.shape}, not float32 NCHW")
    expected = (prep.channels, prep.height, prep.width)
    for axis, (declared, wanted) in enumerate(zip(image.shape[1:], expected, strict=True), start=1):
        if isinstance(declared, int) and declared != wanted:
            raise ModelImportError(
                f"input {image.name!r} axis {axis} is {declared}, preprocessing makes {wanted}"
            )


def self_check(
    session: ort.InferenceSession, image: TensorSpec, scores: TensorSpec, spec: ImportSpec
) -> SelfCheck:
    """Run zeros and seeded noise at batch 1 and 2; compare batched rows with single runs and repeats.

    A graph whose batch axis is fixed (often to 1) runs at that size only; the service slices batches
    to it, so batched rows equal single runs by construction and only the repeat check applies.
    """
    prep = spec.preprocessing
    shape = (prep.channels, prep.height, prep.width)
    fixed = image.shape[0] if isinstance(image.shape[0], int) else None
    sizes = [fixed] if fixed else [1, 2]

    def run(batch: NDArray[np.float32]) -> NDArray[np.float32]:
        try:
            (out,) = session.run([scores.name], {image.name: batch})
        except Exception as exc:  # onnxruntime's own error types; the message says what failed
            raise ModelImportError(f"onnxruntime fails at batch {len(batch)}: {exc}") from exc
        out = np.asarray(out, dtype=np.float32)
        wanted = (len(batch), len(spec.labels))
        if out.ndim == 2 and out.shape[0] == wanted[0] and out.shape[1] != wanted[1]:
            raise ModelImportError(
                f"the spec has {wanted[1]} labels; output {scores.name!r} has {out.shape[1]} scores per image"
            )
        if out.shape != wanted:
            raise ModelImportError(
                f"output {scores.name!r} has shape {out.shape} at batch {len(batch)}; expected {wanted}: "
                "a row of scores per image, one per label"
            )
        if not np.isfinite(out).all():
            raise ModelImportError(f"output {scores.name!r} is not finite")
        return out

    for batch_size in sizes:
        run(np.zeros((batch_size, *shape), dtype=np.float32))
    noise = np.random.default_rng(_SELF_CHECK_SEED).standard_normal((max(sizes), *shape)).astype(np.float32)
    batched = run(noise)
    singles = batched if fixed else np.concatenate([run(noise[i : i + 1]) for i in range(len(noise))])
    repeat_identical = bool(np.array_equal(batched, run(noise)))
    if spec.scores_are_probabilities:
        sums = batched.sum(axis=1)
        if (batched < 0).any() or np.abs(sums - 1).max() > _PROBABILITY_TOLERANCE:
            raise ModelImportError("the spec says scores are probabilities, but rows are not distributions")
    return SelfCheck(float(np.abs(batched - singles).max()), repeat_identical, sizes)


def describe(spec: ImportSpec, summary: GraphSummary, check: SelfCheck, origin: str) -> EntryDescription:
    image = _pick(summary.inputs, spec.image_input, "image input")
    scores = _pick(summary.outputs, spec.scores_output, "scores output")
    probabilities = spec.scores_are_probabilities
    if probabilities is None:
        probabilities = scores.name in summary.softmax_outputs
    extras = [out for out in summary.outputs if out.name != scores.name]
    pooling = ", ".join(f"{op}×{n}" for op, n in summary.pooling_ops.items()) or "none"
    return EntryDescription(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        io=model_io(
            image, region=False, scores=scores, scores_are_probabilities=probabilities, extra_outputs=extras
        ),
        preprocessing=spec.preprocessing,
        labels=spec.labels,
        batching=spec.batching,
        verification=Verification(
            reference=(
                f"onnxruntime {ort.__version__} self-consistency: "
                + ("batched rows vs single-sample runs" if len(check.batch_sizes) > 1 else "fixed batch")
                + f" (repeat run identical: {check.repeat_identical})"
            ),
            max_abs_error=check.max_abs_error,
            tolerance=spec.tolerance,
            batch_sizes=check.batch_sizes,
            onnx_checker=True,
        ),
        provenance=Provenance(
            source="imported",
            description=f"imported unchanged; producer {summary.producer}; pooling ops: {pooling}",
            license=spec.license,
            weights_origin=origin,
            exporter="poolserve import (file copied byte for byte)",
            opset=summary.opset,
            torch_version=None,
            onnx_version=onnx.__version__,
            onnxruntime_version=ort.__version__,
        ),
    )


def _require_one_input(summary: GraphSummary) -> None:
    """The service feeds an imported graph its images and nothing else, so a graph that needs more (a
    region model's boxes) could never run; refuse it before anything tries to."""
    if len(summary.inputs) == 1:
        return
    names = ", ".join(t.name for t in summary.inputs)
    message = (
        "poolserve import takes single-input image classifiers; "
        f"this graph has {len(summary.inputs)} inputs ({names})"
    )
    if any(op in summary.pooling_ops for op in _ROI_OPS):
        message += ": export region models from PyTorch with `poolserve export-model --task region-features`"
    raise ModelImportError(message)


def validate(model: bytes, source: str, spec: ImportSpec) -> tuple[GraphSummary, SelfCheck]:
    """Inspect and run the file's bytes; raise ModelImportError unless it is fit to serve under ``spec``."""
    _, summary = inspect_bytes(model, source)
    if summary.other_domains:
        raise ModelImportError(f"custom operator domains {summary.other_domains} need onnxruntime extensions")
    _require_one_input(summary)
    image = _pick(summary.inputs, spec.image_input, "image input")
    scores = _pick(summary.outputs, spec.scores_output, "scores output")
    _check_image_input(image, spec.preprocessing)
    try:
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
        raise ModelImportError(f"onnxruntime cannot load {source}: {exc}") from exc
    check = self_check(session, image, scores, spec)
    if check.max_abs_error > spec.tolerance or not check.repeat_identical:
        raise ModelImportError(
            f"not self-consistent: batch vs single max abs error {check.max_abs_error:.3g} "
            f"(tolerance {spec.tolerance:g}), repeat identical: {check.repeat_identical}"
        )
    return summary, check


def read_onnx_file(path: Path) -> bytes:
    """The file's model as one self-contained ONNX: weights an exporter wrote to a file beside it (torch's
    dynamo exporter writes ``model.onnx.data``) are read from the model's own folder, wherever the command
    runs, and inlined, because the repository entry is ``model.onnx`` alone."""
    require_model_file(path)
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # not a readable ModelProto: inspection refuses it with its own message
        return data
    tensors = [
        *model.graph.initializer,
        *(a.t for n in model.graph.node for a in n.attribute if a.HasField("t")),
    ]
    if not any(uses_external_data(t) for t in tensors):
        return data
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # onnx raises plain errors for a missing or unreadable data file
        raise ModelImportError(f"cannot read the weights {path.name} keeps in another file: {exc}") from exc
    try:
        return model.SerializeToString()
    except ValueError as exc:  # protobuf's 2 GB ceiling on one message
        raise ModelImportError(
            f"{path.name} with its external weights is over 2 GB, too large for one ONNX file"
        ) from exc


def import_model(
    spec: ImportSpec,
    repository: Path,
    model_path: Path | None = None,
    wheel_cache: Path = DEFAULT_WHEEL_CACHE,
    overwrite: bool = False,
) -> Manifest:
    """Validate the ONNX file (``model_path`` or the spec's wheel member) and write its repository entry;
    nothing is written unless it passed."""
    if model_path is not None:
        model, source = read_onnx_file(model_path), str(model_path)
        origin = spec.weights_origin or model_path.name
    elif spec.wheel is not None:
        model, source = read_member(spec.wheel, wheel_cache).data, spec.wheel.origin()
        origin = spec.weights_origin or source
    else:
        raise ModelImportError("give an ONNX file, or a [wheel] table in the spec")
    summary, check = validate(model, source, spec)
    try:
        return write_entry(repository, model, describe(spec, summary, check, origin), overwrite)
    except (EntryExists, EntryNotWritten) as exc:
        raise ModelImportError(str(exc)) from None
