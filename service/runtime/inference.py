"""The one inference path: every API layer (``/v1`` now, KServe ``/v2`` later) calls ``Runtime``.

Inputs are preprocessed tensors; outputs are numpy arrays. Encoding either is the API layer's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repository.manifest import Manifest, Task
from service.errors import WrongTask
from service.runtime.handlers import RegionItem, RegionResult
from service.runtime.postprocess import probabilities
from service.runtime.registry import ModelEntry, ModelRegistry


@dataclass(frozen=True)
class ClassificationOutput:
    scores: np.ndarray  # (n, classes), the model's own output, for protocols that return raw tensors
    probabilities: np.ndarray  # (n, classes) float32


@dataclass(frozen=True)
class RegionOutput:
    features: list[np.ndarray]  # per image, (k_i, D) float32
    scores: list[np.ndarray] | None  # per image, (k_i, classes), the model's own output
    probabilities: list[np.ndarray] | None  # per image, (k_i, classes); None for models without scores


class Runtime:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def model(self, name: str, task: Task) -> Manifest:
        """The ready model's manifest, or the domain error saying why it cannot serve this task."""
        manifest = self._entry(name).manifest
        assert manifest is not None
        if manifest.task is not task:
            raise WrongTask(f"model {name!r} is a {manifest.task.value} model, not {task.value}")
        return manifest

    async def classify(self, name: str, images: np.ndarray) -> ClassificationOutput:
        """``images``: (n, C, H, W) float32, preprocessed per the manifest."""
        manifest = self.model(name, Task.CLASSIFICATION)
        scores = await self._submit(name, images)
        return ClassificationOutput(scores, self._probabilities(manifest, scores))

    async def features(self, name: str, images: np.ndarray, boxes: list[np.ndarray]) -> RegionOutput:
        """``images``: (n, C, H, W); ``boxes``: per image (k_i, 4) x1 y1 x2 y2 in the model input frame."""
        manifest = self.model(name, Task.REGION_FEATURES)
        result: RegionResult = await self._submit(name, RegionItem(images, boxes))
        probabilities = None
        if result.scores is not None:
            probabilities = [self._probabilities(manifest, s) for s in result.scores]
        return RegionOutput(result.features, result.scores, probabilities)

    def _entry(self, name: str) -> ModelEntry:
        return self.registry.ready(name)

    async def _submit(self, name: str, item: object) -> Any:
        # Time limits live in the HTTP layer: cancelling this await drops a still-queued item.
        batcher = self._entry(name).batcher
        assert batcher is not None
        return await batcher.submit(item)

    @staticmethod
    def _probabilities(manifest: Manifest, scores: np.ndarray) -> np.ndarray:
        return probabilities(scores, manifest.io.scores_are_probabilities)
