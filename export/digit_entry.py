"""Export a trained digit model (the shipped defaults), check it, evaluate it, and write its repository
entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from poolserve.export.digit_cases import classifier_cases, region_cases
from poolserve.export.entry_writer import write_entry
from poolserve.export.evaluate import Figure, measure
from poolserve.export.manifest_builder import EntryDescription, exported_io, parity_verification
from poolserve.export.onnx_export import (
    CLASSIFIER_SIGNATURE,
    REGION_SIGNATURE,
    export_onnx,
    export_provenance,
)
from poolserve.export.parity import TOLERANCE, ParityResult, check_graph, compare, session_for
from poolserve.export.roi_symbolics import roi_settings
from poolserve.models.evaluation_sets import held_out_canvases
from poolserve.models.mnist import DATASET_NAME, MNIST_MEAN, MNIST_STD, MnistSplits
from poolserve.models.region_model import FEATURE_DIM, RegionModel
from poolserve.models.zoo import ModelSpec
from poolserve.repository.manifest import (
    BatchingDefaults,
    Evaluation,
    Manifest,
    Preprocessing,
    Task,
    Verification,
)

VERSION = 1


@dataclass(frozen=True)
class ExportedEntry:
    directory: Path
    manifest: Manifest
    parity: ParityResult
    figures: list[Figure]


def _description(
    spec: ModelSpec, model: nn.Module, verification: Verification, figures: list[Figure]
) -> EntryDescription:
    classification = spec.task == "classification"
    roi = None
    if not classification:
        assert isinstance(model, RegionModel)
        roi = roi_settings(model.roi)
    return EntryDescription(
        name=spec.name,
        version=VERSION,
        description=spec.description,
        io=exported_io(
            Task(spec.task),
            (1, spec.input_size, spec.input_size),
            len(spec.labels),
            0 if classification else FEATURE_DIM,
        ),
        preprocessing=Preprocessing(
            color_mode="L",
            height=spec.input_size,
            width=spec.input_size,
            resize="stretch",
            interpolation="bilinear",
            scale=1.0 / 255.0,
            mean=[MNIST_MEAN],
            std=[MNIST_STD],
        ),
        labels=spec.labels,
        roi=roi,
        batching=BatchingDefaults(max_batch_size=64, max_queue_delay_ms=2.0),
        verification=verification,
        evaluations=[
            Evaluation(
                metric=figure.metric,
                value=figure.value,
                dataset=DATASET_NAME
                if classification
                else f"canvases of held-out digits from {DATASET_NAME}",
                split=figure.split,
                samples=figure.samples,
                command=f"poolserve train {spec.name} && poolserve export {spec.name} && "
                f"poolserve verify {spec.name}",
            )
            for figure in figures
        ],
        provenance=export_provenance(
            "trained",
            "trained by `poolserve train` on the training split only (CPU, fixed seeds)",
            "MIT (weights); MNIST data: Yann LeCun and Corinna Cortes, CC BY-SA 3.0",
            f"poolserve train {spec.name}",
        ),
    )


def export_digit_entry(
    spec: ModelSpec, model: nn.Module, splits: MnistSplits, repository: Path
) -> ExportedEntry:
    """Export -> checker -> parity (refuses above tolerance) -> held-out and shifted figures -> files."""
    classification = spec.task == "classification"
    canvases = [] if classification else held_out_canvases(splits.test)
    cases = (
        classifier_cases(splits.test.images, spec.input_size)
        if classification
        else region_cases(canvases, spec.input_size)
    )
    example = tuple(torch.from_numpy(v) for v in cases[-1].values())
    proto = export_onnx(model, example, CLASSIFIER_SIGNATURE if classification else REGION_SIGNATURE)
    check_graph(proto)
    parity = compare(proto, model, cases, TOLERANCE)
    session: ort.InferenceSession = session_for(proto)
    figures = measure(session, classification, splits.test)
    reference = f"torch {torch.__version__} eager (CPU)"
    verification = parity_verification(reference, parity.max_abs_error, TOLERANCE, cases)
    entry = _description(spec, model, verification, figures)
    manifest = write_entry(repository, proto.SerializeToString(), entry, overwrite=True)
    return ExportedEntry(repository / spec.name / str(VERSION), manifest, parity, figures)
