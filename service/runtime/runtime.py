"""The one inference path: ``/v1`` and KServe ``/v2`` both call ``Runtime``.

Inputs are preprocessed tensors; outputs are numpy arrays. Encoding either is the API layer's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from poolserve.service.runtime.batch_handlers import ClassificationResult, RegionItem, RegionResult
from poolserve.service.runtime.model_io import ClassifierIO, RegionIO
from poolserve.service.runtime.postprocess import probabilities
from poolserve.service.runtime.region_inputs import box_name, check_region_inputs, check_roi_cost
from poolserve.service.runtime.registry import ModelRegistry, ServingModel


@dataclass(frozen=True)
class RegionOutput:
    features: list[np.ndarray]  # per image, (k_i, D) float32
    scores: list[np.ndarray] | None  # per image, (k_i, classes), the model's own output
    scores_are_probabilities: bool

    @cached_property
    def probabilities(self) -> list[np.ndarray] | None:
        """Per image, (k_i, classes) float32; None for models without scores. Computed when a response
        first reads them: /v2 and .npy answers never do."""
        if self.scores is None:
            return None
        return [probabilities(s, self.scores_are_probabilities) for s in self.scores]


class Runtime:
    """Runs requests through a model the caller looked up once (``registry.get(name).serving()``, then
    ``for_task``); nothing here looks a model up again. Time limits live in the HTTP layer: cancelling
    an await here drops a still-queued item."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def classify(self, model: ServingModel[ClassifierIO], images: np.ndarray) -> ClassificationResult:
        """``images``: (n, C, H, W) float32, preprocessed per the manifest."""
        result: ClassificationResult = await model.guard.run(model.batcher.submit, images)
        return result

    async def features(
        self,
        model: ServingModel[RegionIO],
        images: np.ndarray,
        boxes: np.ndarray,
        batch_indices: np.ndarray,
        describe_box: Callable[[int], str] = box_name,
        *,
        max_roi_cost: int,
    ) -> RegionOutput:
        """``images``: (n, C, H, W); ``boxes``: (K, 4) x1 y1 x2 y2 in the model input frame, box ``r``
        on image ``batch_indices[r]``. Outputs come back per image, each image's boxes in request order.

        The boxes pass ``check_region_inputs``, then all of them together ``check_roi_cost`` against
        ``max_roi_cost`` (the request limit ``max_request_roi_cost``), here: the one way into a region
        model's session.
        """
        io = model.io
        check_region_inputs(boxes, batch_indices, len(images), io.frame, describe_box)
        check_roi_cost(boxes, io.roi, max_roi_cost, describe_box)
        per_image = [boxes[batch_indices == i].astype(np.float32, copy=False) for i in range(len(images))]
        result: RegionResult = await model.guard.run(model.batcher.submit, RegionItem(images, per_image))
        return RegionOutput(result.features, result.scores, io.scores_are_probabilities)
