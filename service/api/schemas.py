"""Response bodies as pydantic models: they document the API (OpenAPI); routes fill them from numpy."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from poolserve.repository.manifest import Evaluation, PoolingLayer, Preprocessing, RoISettings, TensorSpec
from poolserve.service.runtime.registry import ModelStatus


class Problem(BaseModel):
    """RFC 9457 problem details, sent as ``application/problem+json`` for every error outside ``/v2``."""

    type: str
    title: str
    status: int
    detail: str  # names each offending field or parameter, and what was expected
    instance: str


class PredictionOut(BaseModel):
    label: str
    index: int
    score: float


class ClassificationResult(BaseModel):
    predictions: list[PredictionOut]


class ClassifyResponse(BaseModel):
    model: str
    version: int
    results: list[ClassificationResult]


class BoxFeatures(BaseModel):
    box: tuple[float, float, float, float]  # as sent, original pixel coordinates
    features: list[float] | str  # a list of floats, or base64 of little-endian float16 with that encoding
    predictions: list[PredictionOut] | None = None


class ImageFeatures(BaseModel):
    boxes: list[BoxFeatures]


class FeaturesResponse(BaseModel):
    model: str
    version: int
    feature_dim: int
    encoding: Literal["float32", "float16-base64"]
    results: list[ImageFeatures]


class ModelInfo(BaseModel):
    name: str
    version: int
    status: ModelStatus
    reason: str | None = None
    task: str | None = None
    description: str | None = None
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    preprocessing: Preprocessing | None = None
    labels: list[str] = []
    feature_dim: int | None = None
    roi: RoISettings | None = None
    execution_provider: str | None = None
    sha256: str | None = None
    parity_max_abs_error: float | None = None
    parity_tolerance: float | None = None
    evaluations: list[Evaluation] = []
    max_batch_size: int | None = None
    max_queue_delay_ms: float | None = None
    pooling: list[PoolingLayer] | None = None  # the export's pooling audit, when the manifest has one


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok", "loading", "unavailable"]
    models: dict[str, ModelStatus] = {}
