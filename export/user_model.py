"""Bring your own model: any PyTorch pooling CNN through the path the shipped models take.

probe (the module runs on the declared input and returns tensors) -> pooling audit (rewrite or refuse)
-> ONNX export -> onnx.checker -> parity against PyTorch eager on random inputs and the sample images
(batch sizes 1, 2, 7; for region models 0, 1 and 50 boxes) -> one staged write of model and manifest.
Nothing is written unless every step passed.

Region-features contract (what the service feeds the graph): ``images`` (N, C, H, W) float32,
preprocessed as the manifest says; ``boxes`` (K, 4) float32 ``x1, y1, x2, y2`` in the model input's pixel
frame (the service maps request boxes into it); ``box_batch_indices`` (K,) int64, the image each box
belongs to. The module returns ``features`` (K, D), or ``(features, logits)`` with ``logits`` (K, classes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from poolserve.export.entry_writer import EntryExists, EntryNotWritten, write_entry
from poolserve.export.manifest_builder import (
    EntryDescription,
    check_entry_name,
    check_labels,
    exported_io,
    parity_verification,
)
from poolserve.export.onnx_export import (
    CLASSIFIER_SIGNATURE,
    REGION_SIGNATURE,
    ExportError,
    export_audited,
    export_provenance,
)
from poolserve.export.parity import (
    BATCH_SIZES,
    BOX_COUNTS,
    InputCase,
    check_batch_independence,
    check_graph,
    compare,
    random_boxes,
)
from poolserve.export.pooling_rules import UnsupportedPoolingError
from poolserve.export.roi_symbolics import roi_settings
from poolserve.export.user_loading import UserModelError, load_samples, one_line
from poolserve.export.user_quantize import require_images, write_quantized_entry
from poolserve.models.roi import RoIAlign, RoIPool
from poolserve.repository.manifest import (
    MODEL_FILENAME,
    Manifest,
    Preprocessing,
    QuantizationMode,
    RoISettings,
    Task,
)

TOLERANCE = 1e-5
_CASE_SEED = 11
_PROBE_BOXES = 3


def _preprocessing(
    shape: tuple[int, int, int],
    color_mode: str | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    scale: float,
) -> Preprocessing:
    channels, height, width = shape
    mode: str = color_mode or ("L" if channels == 1 else "RGB")
    if mode not in ("L", "RGB", "BGR"):
        raise UserModelError(f"color mode {mode!r}: use L, RGB or BGR")
    if (mode == "L") != (channels == 1):
        raise UserModelError(
            f"--color {mode} makes {1 if mode == 'L' else 3} channels; the input has {channels}"
        )
    try:
        return Preprocessing(
            color_mode=mode,  # type: ignore[arg-type]
            height=height,
            width=width,
            scale=scale,
            mean=list(mean) if mean is not None else [0.0] * channels,
            std=list(std) if std is not None else [1.0] * channels,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserModelError(
            f"preprocessing: {'.'.join(map(str, first['loc'])) or 'value'}: {first['msg']}"
        ) from None


def _export_reason(exc: Exception) -> str:
    """The exporter's error in one line: its first line, and the clause saying why and what to do where
    it has one (``... because it is not constant. Please try to make things ... static``), which comes
    after the graph node the first line names."""
    first = one_line(exc)
    why = re.search(r"\b(because .*?)(?:\s+\[Caused by|$)", " ".join(str(exc).split()))
    if why is None or why.group(1) in first:
        return first
    return f"{first[:200]}... {why.group(1)}"


def _task_hint(exc: Exception, task: Task) -> str:
    """A forward that wants more arguments than the images is, most likely, a region model exported as a
    classifier: the default task feeds the images alone."""
    missing = isinstance(exc, TypeError) and "missing" in str(exc) and "required positional" in str(exc)
    if missing and task is Task.CLASSIFICATION:
        return "; a region model? pass --task region-features (task='region-features' in Python)"
    surplus = isinstance(exc, TypeError) and "positional argument" in str(exc) and "were given" in str(exc)
    if surplus and task is Task.REGION_FEATURES:
        return (
            "; a region model is called as forward(images, boxes, box_batch_indices): boxes (K, 4) and "
            "each box's image index (K,), not torchvision's (K, 5) rois"
        )
    return ""


def _outputs(module: nn.Module, inputs: tuple[torch.Tensor, ...], task: Task) -> tuple[torch.Tensor, ...]:
    """Run once on the declared input; the outputs must be what the task's contract says."""
    shape = tuple(inputs[0].shape)
    try:
        with torch.no_grad():
            result = module(*inputs)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise UserModelError(
            f"the model does not run on input {shape}: {type(exc).__name__}: {lines[0] if lines else ''}"
            + _task_hint(exc, task)
        ) from exc
    outputs = tuple(result) if isinstance(result, tuple | list) else (result,)
    wanted = 1 if task is Task.CLASSIFICATION else 2
    if not 1 <= len(outputs) <= wanted or not all(isinstance(o, torch.Tensor) for o in outputs):
        kinds = ", ".join(type(o).__name__ for o in outputs)
        contract = "a logits tensor" if task is Task.CLASSIFICATION else "features, or (features, logits)"
        raise UserModelError(f"the model returns ({kinds}); a {task.value} model returns {contract}")
    rows = shape[0] if task is Task.CLASSIFICATION else len(inputs[1])
    for name, out in zip(("first", "second"), outputs, strict=False):
        if out.dim() != 2 or out.shape[0] != rows or out.dtype != torch.float32:
            raise UserModelError(
                f"the {name} output is {out.dtype} {tuple(out.shape)}; expected float32 ({rows}, width), "
                + ("one row per image" if task is Task.CLASSIFICATION else "one row per box")
            )
    return outputs


def _roi_settings(module: nn.Module) -> RoISettings:
    found = [m for m in module.modules() if isinstance(m, RoIAlign | RoIPool)]
    if not found:
        raise UserModelError(
            "a region-features model pools its boxes with poolserve.ops.RoIAlign or RoIPool; none found"
        )
    return roi_settings(found[0])


def _cases(task: Task, shape: tuple[int, int, int], samples: np.ndarray | None) -> list[InputCase]:
    rng = np.random.default_rng(_CASE_SEED)
    images = [rng.standard_normal((batch, *shape)).astype(np.float32) for batch in BATCH_SIZES]
    if samples is not None:
        images += [
            samples[start : start + max(BATCH_SIZES)] for start in range(0, len(samples), max(BATCH_SIZES))
        ]
    if task is Task.CLASSIFICATION:
        return [{"images": batch} for batch in images]
    cases: list[InputCase] = []
    for batch in images:
        for count in BOX_COUNTS:
            boxes, indices = random_boxes(rng, count, len(batch), shape[1:])
            cases.append({"images": batch, "boxes": boxes, "box_batch_indices": indices})
    return cases


def export_model(
    module: nn.Module,
    *,
    name: str,
    input_shape: tuple[int, int, int],
    task: Literal["classification", "region-features"] | Task = Task.CLASSIFICATION,
    repository: Path = Path("model_repository"),
    labels: Sequence[str] | None = None,
    color_mode: Literal["L", "RGB", "BGR"] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float = 1.0 / 255.0,
    samples: Path | None = None,
    version: int = 1,
    description: str | None = None,
    weights_origin: str = "user-supplied PyTorch module",
    license: str = "unspecified",
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
    quantize: QuantizationMode | None = None,
    calibration: Path | None = None,
) -> Manifest:
    """Export ``module`` to ``<repository>/<name>/<version>/`` with its manifest, or raise
    :class:`UserModelError` (one line saying what to fix) having written nothing. With ``quantize``, the
    entry holds the int8 or fp16 graph derived from the verified float32 one
    (``poolserve.export.user_quantize``)."""
    require_images(quantize, samples, calibration)
    try:
        check_entry_name(name)
    except ValueError as exc:
        raise UserModelError(f"name {name!r}: {exc}") from None
    if version < 1:
        raise UserModelError(f"version {version}: versions start at 1")
    if repository.exists() and not repository.is_dir():
        raise UserModelError(f"repository {repository} is a file, not a folder")
    if (repository / name / str(version) / MODEL_FILENAME).exists() and not overwrite:
        raise UserModelError(str(EntryExists(repository / name / str(version))))
    try:
        task = Task(task)
    except ValueError:
        raise UserModelError(f"task {task!r}: use one of {', '.join(t.value for t in Task)}") from None
    if len(input_shape) != 3:
        raise UserModelError(f"input_shape {tuple(input_shape)}: give (channels, height, width)")
    if isinstance(labels, str):
        raise UserModelError("labels: give a list of names, one per class, not one string")
    shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    preprocessing = _preprocessing(shape, color_mode, mean, std, scale)
    roi = _roi_settings(module) if task is Task.REGION_FEATURES else None
    module.eval()
    rng = np.random.default_rng(_CASE_SEED)
    example: tuple[torch.Tensor, ...] = (
        torch.from_numpy(rng.standard_normal((2, *shape)).astype(np.float32)),
    )
    if task is Task.REGION_FEATURES:
        boxes, indices = random_boxes(rng, _PROBE_BOXES, 2, shape[1:])
        example += (torch.from_numpy(boxes), torch.from_numpy(indices))
    outputs = _outputs(module, example, task)
    widths = [int(o.shape[1]) for o in outputs]
    classes = widths[0] if task is Task.CLASSIFICATION else (widths[1] if len(widths) > 1 else 0)
    try:
        names = check_labels(labels) if labels is not None else [f"class_{i}" for i in range(classes)]
    except ValueError as exc:
        raise UserModelError(str(exc)) from None
    if len(names) != classes:
        raise UserModelError(f"{len(names)} labels for {classes} output classes")
    cases = _cases(task, shape, load_samples(samples, preprocessing) if samples is not None else None)
    signature = CLASSIFIER_SIGNATURE if task is Task.CLASSIFICATION else REGION_SIGNATURE
    if len(outputs) == 1 and task is Task.REGION_FEATURES:
        signature = type(signature)(signature.inputs, ["features"], signature.dynamic_axes)
    try:
        proto, pooling = export_audited(module, example, signature)
        check_graph(proto)
    except (UnsupportedPoolingError, ExportError) as exc:
        raise UserModelError(str(exc)) from exc
    except Exception as exc:  # the exporter's own errors (an operator ONNX lacks, a trace failure)
        raise UserModelError(f"ONNX export failed: {_export_reason(exc)}") from exc
    try:
        parity = compare(proto, module, cases, tolerance)
        check_batch_independence(proto, cases, tolerance)
    except ExportError as exc:
        raise UserModelError(str(exc)) from exc
    except Exception as exc:  # onnxruntime's own error types, running the exported graph
        raise UserModelError(
            f"the exported graph fails in onnxruntime on batches of {', '.join(map(str, BATCH_SIZES))}: "
            f"{one_line(exc)}; does the model fix its batch size (view(2, -1), a constant reshape)? "
            "use x.flatten(1) or x.view(x.size(0), -1)"
        ) from exc
    reference = f"torch {torch.__version__} eager (random inputs" + (
        " and sample images)" if samples else ")"
    )

    entry = EntryDescription(
        name=name,
        version=version,
        description=description or f"{type(module).__name__} exported by poolserve export-model",
        io=exported_io(task, shape, classes, widths[0] if task is Task.REGION_FEATURES else 0),
        preprocessing=preprocessing,
        labels=names,
        roi=roi,
        verification=parity_verification(reference, parity.max_abs_error, tolerance, cases),
        provenance=export_provenance(
            "converted", f"{type(module).__name__} via poolserve export-model", license, weights_origin
        ),
        pooling=pooling,
    )
    if quantize is not None:
        return write_quantized_entry(
            proto,
            entry,
            mode=quantize,
            repository=repository,
            preprocessing=preprocessing,
            samples=samples,
            calibration=calibration,
            overwrite=overwrite,
        )
    try:
        return write_entry(repository, proto.SerializeToString(), entry, overwrite)
    except (EntryExists, EntryNotWritten, ValidationError) as exc:
        raise UserModelError(str(exc).splitlines()[0]) from exc
