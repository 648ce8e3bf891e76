"""The one way every kind of entry gets its manifest: trained, converted, imported, quantized.

An :class:`EntryDescription` is everything a manifest says except the model file's sha256, which only the
written file can give (``poolserve.export.entry_writer``). What is derived is derived here, once: the task
(an entry with RoI settings is a region-features model), the feature width (read off the ``features``
output) and the parity check's batch sizes and box counts (read off the inputs it ran on). Torch-free:
``poolserve import`` uses it without loading torch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np

from poolserve.repository.manifest import (
    NAME_PATTERN,
    BatchingDefaults,
    Evaluation,
    Manifest,
    ModelIO,
    PoolingLayer,
    Preprocessing,
    Provenance,
    Quantization,
    RoISettings,
    Task,
    TensorSpec,
    Verification,
)

# The graph tensor names every entry poolserve exports uses (imported graphs keep their own).
IMAGES = "images"
BOXES = "boxes"
BOX_BATCH_INDICES = "box_batch_indices"
FEATURES = "features"
LOGITS = "logits"

Rows = Literal["batch", "boxes"]


def check_entry_name(name: str) -> str:
    """``name`` unchanged, or ValueError saying what an entry's name may hold (it becomes a folder and a URL
    segment). Every command that names an entry checks it here, so all refuse alike."""
    if not re.fullmatch(NAME_PATTERN, name):  # fullmatch: the pattern's ``$`` would let "name\n" through
        raise ValueError("use lowercase letters, digits, '.', '_' and '-' (at most 64)")
    return name


def check_labels(labels: Sequence[str]) -> list[str]:
    """``labels`` as a list, or ValueError naming the first problem. Every command that takes labels checks
    them here: a blank label names nothing, and two classes of one name would be told apart by nobody."""
    if not all(isinstance(label, str) for label in labels):  # from Python, where nothing parsed them
        raise ValueError("labels: give a list of names (strings), one per class")
    blank = [i for i, label in enumerate(labels) if not label.strip()]
    if blank:
        raise ValueError(f"label {blank[0] + 1} of {len(labels)} is blank; every class needs a name")
    repeated = sorted(label for label, count in Counter(labels).items() if count > 1)
    if repeated:
        raise ValueError(f"labels {', '.join(map(repr, repeated))} appear more than once")
    return list(labels)


@dataclass(frozen=True)
class EntryDescription:
    """A repository entry's manifest, all but the hash of its model file."""

    name: str
    version: int
    description: str
    io: ModelIO
    preprocessing: Preprocessing
    labels: list[str]
    verification: Verification
    provenance: Provenance
    roi: RoISettings | None = None
    batching: BatchingDefaults = field(default_factory=BatchingDefaults)
    evaluations: list[Evaluation] = field(default_factory=list)
    pooling: list[PoolingLayer] | None = None
    quantization: Quantization | None = None

    @property
    def task(self) -> Task:
        return Task.CLASSIFICATION if self.roi is None else Task.REGION_FEATURES

    def manifest(self, sha256: str) -> Manifest:
        """The manifest of a model file hashing to ``sha256`` (pydantic checks the task's shape)."""
        features = self.io.features
        return Manifest(
            name=self.name,
            version=self.version,
            task=self.task,
            description=self.description,
            sha256=sha256,
            io=self.io,
            preprocessing=self.preprocessing,
            labels=self.labels,
            feature_dim=int(features.shape[-1]) if features is not None else None,
            roi=self.roi,
            batching=self.batching,
            verification=self.verification,
            evaluations=self.evaluations,
            provenance=self.provenance,
            pooling=self.pooling,
            quantization=self.quantization,
        )


def described(manifest: Manifest) -> EntryDescription:
    """The description ``manifest`` was built from: the start of an entry derived from another.

    Raises ValueError for a manifest this builder would not write (its task or feature width disagree
    with its RoI settings and outputs).
    """
    description = EntryDescription(**{f.name: getattr(manifest, f.name) for f in fields(EntryDescription)})
    if description.manifest(manifest.sha256) != manifest:
        raise ValueError(f"{manifest.name}: task or feature_dim disagree with its roi and io")
    return description


def image_input(channels: int, height: int, width: int) -> TensorSpec:
    return TensorSpec(name=IMAGES, dtype="float32", shape=["batch", channels, height, width])


def output_rows(name: str, rows: Rows, width: int) -> TensorSpec:
    """A float32 output with one row per image (``batch``) or per box (``boxes``)."""
    return TensorSpec(name=name, dtype="float32", shape=[rows, width])


def model_io(
    image: TensorSpec,
    *,
    region: bool,
    scores: TensorSpec | None = None,
    features: TensorSpec | None = None,
    scores_are_probabilities: bool = False,
    extra_outputs: Sequence[TensorSpec] = (),
) -> ModelIO:
    """Which tensor plays which role; a region model also takes ``boxes`` (K, 4) and
    ``box_batch_indices`` (K,), under those names."""
    return ModelIO(
        image=image,
        boxes=TensorSpec(name=BOXES, dtype="float32", shape=["boxes", 4]) if region else None,
        box_batch_indices=TensorSpec(name=BOX_BATCH_INDICES, dtype="int64", shape=["boxes"])
        if region
        else None,
        scores=scores,
        scores_are_probabilities=scores_are_probabilities,
        features=features,
        extra_outputs=list(extra_outputs),
    )


def exported_io(task: Task, image: tuple[int, int, int], classes: int, feature_dim: int = 0) -> ModelIO:
    """The tensors of a graph exported with ``poolserve.export.onnx_export``'s signatures: ``images``
    (and ``boxes``, ``box_batch_indices``) in; a classifier's ``logits``, or a region model's
    ``features`` and, when it has ``classes``, ``logits`` out."""
    if task is Task.CLASSIFICATION:
        return model_io(image_input(*image), region=False, scores=output_rows(LOGITS, "batch", classes))
    return model_io(
        image_input(*image),
        region=True,
        scores=output_rows(LOGITS, "boxes", classes) if classes else None,
        features=output_rows(FEATURES, "boxes", feature_dim),
    )


def parity_verification(
    reference: str,
    max_abs_error: float,
    tolerance: float,
    cases: Sequence[Mapping[str, np.ndarray]],
) -> Verification:
    """A parity check against ``reference``: batch sizes and box counts are read off the cases it ran."""
    return Verification(
        reference=reference,
        max_abs_error=max_abs_error,
        tolerance=tolerance,
        batch_sizes=sorted({len(case[IMAGES]) for case in cases}),
        box_counts=sorted({len(case[BOXES]) for case in cases if BOXES in case}),
        onnx_checker=True,
    )
