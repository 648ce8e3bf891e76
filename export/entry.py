"""Export a trained default model, verify it, evaluate it, and write its repository entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from poolserve.export.cases import classifier_cases, region_cases
from poolserve.export.entry_writer import parity_verification, torch_provenance, write_entry
from poolserve.export.evaluate import Figure, measure
from poolserve.export.onnx_export import CLASSIFIER_SIGNATURE, REGION_SIGNATURE, export_onnx
from poolserve.export.verify import TOLERANCE, ParityResult, check_graph, compare, session_for
from poolserve.models.evaluation_sets import held_out_canvases
from poolserve.models.mnist import DATASET_NAME, MNIST_MEAN, MNIST_STD, MnistSplits
from poolserve.models.region import FEATURE_DIM, ROI_OUTPUT_SIZE, RegionModel
from poolserve.models.roi import RoIAlign
from poolserve.models.zoo import ModelSpec
from poolserve.repository.manifest import (
    BatchingDefaults,
    Evaluation,
    Manifest,
    ModelIO,
    Preprocessing,
    RoISettings,
    Task,
    TensorSpec,
)

VERSION = 1


@dataclass(frozen=True)
class ExportedEntry:
    directory: Path
    manifest: Manifest
    parity: ParityResult
    figures: list[Figure]


def _io(spec: ModelSpec) -> ModelIO:
    size = spec.input_size
    image = TensorSpec(name="images", dtype="float32", shape=["batch", 1, size, size])
    if spec.task == "classification":
        return ModelIO(
            image=image, scores=TensorSpec(name="logits", dtype="float32", shape=["batch", len(spec.labels)])
        )
    return ModelIO(
        image=image,
        boxes=TensorSpec(name="boxes", dtype="float32", shape=["boxes", 4]),
        box_batch_indices=TensorSpec(name="box_batch_indices", dtype="int64", shape=["boxes"]),
        features=TensorSpec(name="features", dtype="float32", shape=["boxes", FEATURE_DIM]),
        scores=TensorSpec(name="logits", dtype="float32", shape=["boxes", len(spec.labels)]),
    )


def _roi_settings(model: nn.Module) -> RoISettings:
    assert isinstance(model, RegionModel)
    roi = model.roi
    if isinstance(roi, RoIAlign):
        return RoISettings(
            op="RoiAlign",
            output_size=ROI_OUTPUT_SIZE,
            spatial_scale=roi.spatial_scale,
            sampling_ratio=max(roi.sampling_ratio, 0),
            aligned=roi.aligned,
        )
    return RoISettings(op="MaxRoiPool", output_size=ROI_OUTPUT_SIZE, spatial_scale=roi.spatial_scale)


def export_entry(spec: ModelSpec, model: nn.Module, splits: MnistSplits, repository: Path) -> ExportedEntry:
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

    verification = parity_verification(parity, cases, TOLERANCE, f"torch {torch.__version__} eager (CPU)")

    def manifest_for(sha256: str) -> Manifest:
        return Manifest(
            name=spec.name,
            version=VERSION,
            task=Task.CLASSIFICATION if classification else Task.REGION_FEATURES,
            description=spec.description,
            sha256=sha256,
            io=_io(spec),
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
            feature_dim=None if classification else FEATURE_DIM,
            roi=None if classification else _roi_settings(model),
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
            provenance=torch_provenance(
                "trained",
                "trained by `poolserve train` on the training split only (CPU, fixed seeds)",
                "MIT (weights); MNIST data: Yann LeCun and Corinna Cortes, CC BY-SA 3.0",
                f"poolserve train {spec.name}",
            ),
        )

    manifest = write_entry(repository, spec.name, VERSION, proto, manifest_for, overwrite=True)
    return ExportedEntry(repository / spec.name / str(VERSION), manifest, parity, figures)
