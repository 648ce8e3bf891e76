"""Which graph tensor plays which role, per task: the one place that knows the image from the boxes.

The manifest's ``ModelIO`` holds every role as an optional field, because one schema describes every
task; these types hold exactly the roles of one task, built once from a validated manifest, so code below
them never asks whether a tensor is there. ``inputs`` and ``outputs`` give the graph's tensors in the
order every protocol lists them (image first; features before scores), computed once with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from poolserve.repository.manifest import Manifest, RoISettings, Task, TensorSpec
from poolserve.service.runtime.region_inputs import BoxFrame


def _role(spec: TensorSpec | None, manifest: Manifest, role: str) -> TensorSpec:
    # The manifest's validator already requires each task's roles; this narrows the type.
    if spec is None:
        raise ValueError(f"model {manifest.name!r}: a {manifest.task.value} model needs io.{role}")
    return spec


def _fixed_batch(image: TensorSpec) -> int | None:
    # Imported graphs may fix the batch axis (often to 1); those run a batch in slices of that size.
    first = image.shape[0] if image.shape else None
    return first if isinstance(first, int) and first > 0 else None


@dataclass(frozen=True)
class ClassifierIO:
    """Classification: ``image`` (n, C, H, W) in, ``scores`` (n, classes) out."""

    task: ClassVar[Task] = Task.CLASSIFICATION

    image: TensorSpec
    scores: TensorSpec
    scores_are_probabilities: bool
    labels: tuple[str, ...]
    fixed_batch: int | None  # the graph's own batch size, if it fixes one
    inputs: tuple[TensorSpec, ...] = field(init=False)
    outputs: tuple[TensorSpec, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", (self.image,))
        object.__setattr__(self, "outputs", (self.scores,))

    @classmethod
    def of(cls, manifest: Manifest) -> ClassifierIO:
        _require_task(manifest, cls.task)
        io = manifest.io
        return cls(
            image=io.image,
            scores=_role(io.scores, manifest, "scores"),
            scores_are_probabilities=io.scores_are_probabilities,
            labels=tuple(manifest.labels),
            fixed_batch=_fixed_batch(io.image),
        )


@dataclass(frozen=True)
class RegionIO:
    """Region features: ``image`` (n, C, H, W), ``boxes`` (K, 4) x1 y1 x2 y2 in ``frame`` and
    ``box_batch_indices`` (K,) in; ``features`` (K, feature_dim) and, for some models, ``scores``
    (K, classes) out."""

    task: ClassVar[Task] = Task.REGION_FEATURES

    image: TensorSpec
    boxes: TensorSpec
    box_batch_indices: TensorSpec
    features: TensorSpec
    scores: TensorSpec | None  # None: the model gives features only
    scores_are_probabilities: bool
    labels: tuple[str, ...]
    feature_dim: int
    frame: BoxFrame  # the model input frame the boxes are given in
    roi: RoISettings  # the RoI op inside the graph: what a box costs it
    inputs: tuple[TensorSpec, ...] = field(init=False)
    outputs: tuple[TensorSpec, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", (self.image, self.boxes, self.box_batch_indices))
        scores = () if self.scores is None else (self.scores,)
        object.__setattr__(self, "outputs", (self.features, *scores))

    @classmethod
    def of(cls, manifest: Manifest) -> RegionIO:
        _require_task(manifest, cls.task)
        io = manifest.io
        if manifest.feature_dim is None or manifest.roi is None:
            raise ValueError(f"model {manifest.name!r}: a region-features model needs feature_dim and roi")
        return cls(
            image=io.image,
            boxes=_role(io.boxes, manifest, "boxes"),
            box_batch_indices=_role(io.box_batch_indices, manifest, "box_batch_indices"),
            features=_role(io.features, manifest, "features"),
            scores=io.scores,
            scores_are_probabilities=io.scores_are_probabilities,
            labels=tuple(manifest.labels),
            feature_dim=manifest.feature_dim,
            frame=BoxFrame.of(manifest),
            roi=manifest.roi,
        )


TaskIO = ClassifierIO | RegionIO


def _require_task(manifest: Manifest, task: Task) -> None:
    if manifest.task is not task:
        raise ValueError(f"model {manifest.name!r} is a {manifest.task.value} model, not {task.value}")


def model_io(manifest: Manifest) -> TaskIO:
    """The manifest's tensor roles as its task's IO type."""
    if manifest.task is Task.CLASSIFICATION:
        return ClassifierIO.of(manifest)
    return RegionIO.of(manifest)
