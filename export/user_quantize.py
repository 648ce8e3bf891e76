"""``poolserve export-model --quantize int8|fp16``: the verified float32 export of a user's model, reduced.

int8 ranges are calibrated on ``--calibration`` images (else ``--samples``); agreement with float32 is
measured on ``--samples`` (else on the calibration images, and the manifest says so). A user's model has
no labelled held-out set here, so top-1 agreement with float32 on real images stands in for accuracy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from pydantic import ValidationError

from poolserve.export.entry_writer import EntryExists, EntryNotWritten, write_entry
from poolserve.export.manifest_builder import EntryDescription
from poolserve.export.parity import InputCase, random_boxes
from poolserve.export.quantize import quantize
from poolserve.export.quantized_entry import (
    Calibration,
    QuantizationError,
    check_runs,
    gate,
    measure_parity,
    quantized_description,
)
from poolserve.export.user_loading import UserModelError, load_samples
from poolserve.repository.manifest import Manifest, Preprocessing, QuantizationMode, Task

_BATCH = 16
_BOXES_PER_IMAGE = 8
_SEED = 13


def require_images(mode: QuantizationMode | None, samples: Path | None, calibration: Path | None) -> None:
    """Refuse before exporting anything: a quantized entry is judged on real images, never on noise."""
    if mode is not None and samples is None and calibration is None:
        what = "calibrate int8 ranges and measure" if mode == "int8" else "measure"
        raise UserModelError(
            f"--quantize {mode} needs real images to {what} agreement with float32: pass --calibration DIR "
            "(training images, never your test set) and/or --samples DIR"
        )


def _cases(task: Task, images: np.ndarray) -> list[InputCase]:
    rng = np.random.default_rng(_SEED)
    cases: list[InputCase] = []
    for start in range(0, len(images), _BATCH):
        batch = images[start : start + _BATCH]
        if task is Task.CLASSIFICATION:
            cases.append({"images": batch})
            continue
        boxes, indices = random_boxes(rng, _BOXES_PER_IMAGE * len(batch), len(batch), batch.shape[2:])
        cases.append({"images": batch, "boxes": boxes, "box_batch_indices": indices})
    return cases


def write_quantized_entry(
    proto: onnx.ModelProto,
    float32_entry: EntryDescription,
    *,
    mode: QuantizationMode,
    repository: Path,
    preprocessing: Preprocessing,
    samples: Path | None,
    calibration: Path | None,
    overwrite: bool,
) -> Manifest:
    """Quantize ``proto`` (already verified against PyTorch), gate it against float32, write the entry."""
    calibration_dir = calibration or samples
    assert calibration_dir is not None  # require_images ran first
    float32_sha256 = hashlib.sha256(proto.SerializeToString()).hexdigest()
    source = float32_entry.manifest(float32_sha256)
    calibration_images = load_samples(calibration_dir, preprocessing)
    compare_dir = samples or calibration_dir
    compare_images = load_samples(samples, preprocessing) if samples is not None else calibration_images
    compared_cases = _cases(source.task, compare_images)
    graph = quantize(proto, mode, _cases(source.task, calibration_images))
    check_runs(graph)
    scores = source.io.scores.name if source.io.scores is not None else None
    parity = measure_parity(proto, graph.proto, compared_cases, mode, scores)
    try:
        gate(parity, mode)
    except QuantizationError as exc:
        raise UserModelError(str(exc)) from exc
    boxes = f", {_BOXES_PER_IMAGE} random boxes each" if source.task is Task.REGION_FEATURES else ""
    compared_on = f"{len(compare_images)} images in {compare_dir.name}/{boxes}"
    if samples is None:
        compared_on += " (the calibration images: pass --samples for an independent check)"

    entry = quantized_description(
        source,
        name=source.name,
        version=source.version,
        float32_sha256=float32_sha256,
        graph=graph,
        parity=parity,
        cases=compared_cases,
        calibration=Calibration(
            f"{len(calibration_images)} images in {calibration_dir.name}/{boxes}", len(calibration_images)
        ),
        compared_on=compared_on,
    )
    try:
        return write_entry(repository, graph.proto.SerializeToString(), entry, overwrite)
    except (EntryExists, EntryNotWritten, ValidationError) as exc:
        raise UserModelError(str(exc).splitlines()[0]) from exc
