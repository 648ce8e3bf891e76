"""Export a trained default model, verify it, evaluate it, and write its repository entry."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort
import torch
from torch import nn

from export.cases import classifier_cases, region_cases
from export.evaluate import Figure, measure
from export.onnx_export import CLASSIFIER_SIGNATURE, EXPORTER, OPSET, REGION_SIGNATURE, export_onnx
from export.verify import BATCH_SIZES, BOX_COUNTS, TOLERANCE, ParityResult, check_graph, compare, session_for
from models.evaluation_sets import held_out_canvases
from models.mnist import DATASET_NAME, MNIST_MEAN, MNIST_STD, MnistSplits
from models.region import FEATURE_DIM, ROI_OUTPUT_SIZE, RegionModel
from models.roi import RoIAlign
from models.zoo import ModelSpec
from repository.manifest import (
    MODEL_FILENAME,
    BatchingDefaults,
    Evaluation,
    Manifest,
    ModelIO,
    Preprocessing,
    Provenance,
    RoISettings,
    Task,
    TensorSpec,
    Verification,
)
from repository.store import sha256_file, write_manifest

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

    directory = repository / spec.name / str(VERSION)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".onnx.tmp", delete=False) as handle:
        handle.write(proto.SerializeToString())
    # NamedTemporaryFile creates 0600; a model served by another user (the container's) must be readable.
    Path(handle.name).chmod(0o644)
    model_path = Path(handle.name).replace(directory / MODEL_FILENAME)
    manifest = Manifest(
        name=spec.name,
        version=VERSION,
        task=Task.CLASSIFICATION if classification else Task.REGION_FEATURES,
        description=spec.description,
        sha256=sha256_file(model_path),
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
        verification=Verification(
            reference=f"torch {torch.__version__} eager (CPU)",
            max_abs_error=parity.max_abs_error,
            tolerance=TOLERANCE,
            batch_sizes=list(BATCH_SIZES),
            box_counts=[] if classification else list(BOX_COUNTS),
            onnx_checker=True,
        ),
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
        provenance=Provenance(
            source="trained",
            description="trained by `poolserve train` on the training split only (CPU, fixed seeds)",
            license="MIT (weights); MNIST data: Yann LeCun and Corinna Cortes, CC BY-SA 3.0",
            weights_origin=f"poolserve train {spec.name}",
            exporter=EXPORTER,
            opset=OPSET,
            torch_version=torch.__version__,
            onnx_version=onnx.__version__,
            onnxruntime_version=ort.__version__,
        ),
    )
    write_manifest(directory, manifest)
    return ExportedEntry(directory, manifest, parity, figures)
