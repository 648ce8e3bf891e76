"""The one inference path: ``/v1`` and KServe ``/v2`` both call ``Runtime``.

Inputs are preprocessed tensors; outputs are numpy arrays. Encoding either is the API layer's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from poolserve.repository.manifest import Manifest, Task
from poolserve.service.errors import WrongTask
from poolserve.service.runtime.batch_handlers import RegionItem, RegionResult
from poolserve.service.runtime.postprocess import probabilities
from poolserve.service.runtime.region_inputs import BoxFrame, box_name, check_region_inputs
from poolserve.service.runtime.registry import ModelEntry, ModelRegistry


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

    async def features(
        self,
        name: str,
        images: np.ndarray,
        boxes: np.ndarray,
        batch_indices: np.ndarray,
        describe_box: Callable[[int], str] = box_name,
    ) -> RegionOutput:
        """``images``: (n, C, H, W); ``boxes``: (K, 4) x1 y1 x2 y2 in the model input frame, box ``r``
        on image ``batch_indices[r]``. Outputs come back per image, each image's boxes in request order.

        The boxes pass ``check_region_inputs`` here, the one way into a region model's session.
        """
        manifest = self.model(name, Task.REGION_FEATURES)
        check_region_inputs(boxes, batch_indices, len(images), BoxFrame.of(manifest), describe_box)
        per_image = [boxes[batch_indices == i].astype(np.float32, copy=False) for i in range(len(images))]
        result: RegionResult = await self._submit(name, RegionItem(images, per_image))
        probabilities = None
        if result.scores is not None:
            probabilities = [self._probabilities(manifest, s) for s in result.scores]
        return RegionOutput(result.features, result.scores, probabilities)

    def _entry(self, name: str) -> ModelEntry:
        return self.registry.ready(name)

    async def _submit(self, name: str, item: object) -> Any:
        # Time limits live in the HTTP layer: cancelling this await drops a still-queued item.
        entry = self._entry(name)
        assert entry.batcher is not None and entry.guard is not None
        return await entry.guard.run(entry.batcher.submit, item)

    @staticmethod
    def _probabilities(manifest: Manifest, scores: np.ndarray) -> np.ndarray:
        return probabilities(scores, manifest.io.scores_are_probabilities)
