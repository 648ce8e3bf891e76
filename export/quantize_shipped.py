"""``poolserve export --quantize int8|fp16 NAME``: a reduced-precision variant of a shipped digit model.

Reads the committed float32 entry ``NAME/1`` (no checkpoint needed), calibrates int8 ranges on
training-split images only (digits, or canvases of training digits with their true boxes), compares with
float32 and scores held-out accuracy on the test split, then writes ``NAME-<mode>/1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from poolserve.export.entry_writer import write_entry
from poolserve.export.evaluate import Accuracy, measure
from poolserve.export.parity import InputCase
from poolserve.export.quantize import quantize
from poolserve.export.quantized_entry import (
    Calibration,
    QuantizedParity,
    check_runs,
    gate,
    measure_parity,
    quantized_description,
)
from poolserve.models.canvas import Canvas, compose_canvases
from poolserve.models.evaluation_sets import held_out_canvases
from poolserve.models.mnist import DigitSplit, held_out_split, normalized_digits
from poolserve.repository.manifest import Evaluation, Manifest, QuantizationMode, Task
from poolserve.repository.store import EntryLocation, read_manifest, verified_model_path

CALIBRATION_DIGITS = 1000
CALIBRATION_CANVASES = 200
# Canvases of training-split digits only, drawn with their own seed (never an evaluation set's).
CALIBRATION_CANVAS_SEED = 1
_BATCH = 50


@dataclass(frozen=True)
class QuantizedShippedEntry:
    manifest: Manifest
    parity: QuantizedParity
    accuracy: Accuracy
    float32_accuracy: float


def digit_cases(split: DigitSplit, count: int | None = None) -> list[InputCase]:
    images = normalized_digits(split.images[:count])
    return [{"images": images[start : start + _BATCH]} for start in range(0, len(images), _BATCH)]


def canvas_cases(canvases: list[Canvas]) -> list[InputCase]:
    cases: list[InputCase] = []
    for start in range(0, len(canvases), _BATCH):
        chunk = canvases[start : start + _BATCH]
        cases.append(
            {
                "images": normalized_digits(np.stack([c.image for c in chunk])),
                "boxes": np.concatenate([c.boxes for c in chunk]).astype(np.float32),
                "box_batch_indices": np.concatenate(
                    [np.full(len(c.boxes), i, dtype=np.int64) for i, c in enumerate(chunk)]
                ),
            }
        )
    return cases


def quantize_shipped(name: str, mode: QuantizationMode, repository: Path) -> QuantizedShippedEntry:
    location = EntryLocation(name, 1, repository / name / "1")
    source = read_manifest(location)
    model_path = verified_model_path(location, source)
    splits = held_out_split()
    if source.task is Task.CLASSIFICATION:
        calibration = digit_cases(splits.train, CALIBRATION_DIGITS)
        calibrated_on = f"the first {CALIBRATION_DIGITS} training-split digits"
        held_out = digit_cases(splits.test)
        compared_on = f"the {len(splits.test)} held-out test digits"
    else:
        train_canvases = compose_canvases(splits.train, CALIBRATION_CANVASES, CALIBRATION_CANVAS_SEED)
        calibration = canvas_cases(train_canvases)
        calibrated_on = f"{CALIBRATION_CANVASES} canvases of training-split digits, true boxes"
        canvases = held_out_canvases(splits.test)
        held_out = canvas_cases(canvases)
        compared_on = f"true boxes of {len(canvases)} held-out canvases"
    reference = onnx.load(model_path)
    graph = quantize(reference, mode, calibration)
    session = check_runs(graph)
    scores = source.io.scores.name if source.io.scores is not None else None
    parity = measure_parity(reference, graph.proto, held_out, mode, scores)
    gate(parity, mode)
    # Every figure the float32 entry records, re-measured on the variant (held-out first).
    figures = {f.metric: f for f in measure(session, source.task is Task.CLASSIFICATION, splits.test)}
    evaluations = [
        Evaluation(
            metric=recorded.metric,
            value=figures[recorded.metric].value,
            dataset=recorded.dataset,
            split=recorded.split,
            samples=figures[recorded.metric].samples,
            command=f"poolserve export --quantize {mode} {name}",
        )
        for recorded in source.evaluations
        if recorded.metric in figures
    ]
    float32 = source.evaluations[0]
    accuracy = Accuracy(evaluations[0].value, evaluations[0].samples)

    entry = quantized_description(
        source,
        name=f"{name}-{mode}",
        float32_sha256=source.sha256,
        graph=graph,
        parity=parity,
        cases=held_out,
        calibration=Calibration(calibrated_on, sum(len(c["images"]) for c in calibration)),
        compared_on=compared_on,
        evaluations=evaluations,
    )
    manifest = write_entry(repository, graph.proto.SerializeToString(), entry, overwrite=True)
    return QuantizedShippedEntry(manifest, parity, accuracy, float32.value)
