"""Prepared batches through the model: the service's own batch handlers and postprocessing, no batcher
(there is one caller, so nothing to coalesce)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from poolserve.extract.job import JobSpec, LocalModel
from poolserve.extract.prepare import PreparedBatch
from poolserve.extract.rows import ImageResult, Ranked
from poolserve.service.runtime.batch_handlers import ClassificationHandler, RegionItem, batch_handler
from poolserve.service.runtime.model_io import model_io
from poolserve.service.runtime.postprocess import probabilities, top_k
from poolserve.service.runtime.providers import select_providers
from poolserve.service.runtime.sessions import SessionConfig, create_session


class ModelRunner:
    """One onnxruntime session for the job's lifetime; ``threads`` caps its intra-op threads (0: all)."""

    def __init__(self, model: LocalModel, job: JobSpec, threads: int = 0) -> None:
        providers = select_providers("auto", ort.get_available_providers(), strict=False).providers
        session = create_session(model.path, SessionConfig(providers, intra_op_threads=threads))
        self._manifest = model.manifest
        self._job = job
        self._handler = batch_handler(session, model_io(model.manifest))

    def _ranked(self, probs: np.ndarray) -> Ranked:
        return Ranked.from_predictions(top_k(probs, self._manifest.labels, self._job.top_k))

    def infer(self, batch: PreparedBatch) -> list[ImageResult]:
        """One result per usable image, in order."""
        if not batch.images:
            return []
        images = batch.tensor()
        if isinstance(self._handler, ClassificationHandler):
            (classified,) = self._handler.run([images])
            ranked = self._ranked(classified.probabilities)
            return [
                ImageResult(
                    p.item.key,
                    p.size,
                    None,
                    None,
                    None,
                    Ranked(ranked.labels[i : i + 1], ranked.indices[i : i + 1], ranked.scores[i : i + 1]),
                )
                for i, p in enumerate(batch.images)
            ]
        mapped = [p.mapped for p in batch.images if p.mapped is not None]
        (result,) = self._handler.run([RegionItem(images, mapped)])
        return [
            ImageResult(
                p.item.key,
                p.size,
                p.boxes,
                p.item.category_ids,
                result.features[i],
                self._ranked(probabilities(result.scores[i], self._manifest.io.scores_are_probabilities))
                if result.scores is not None
                else None,
            )
            for i, p in enumerate(batch.images)
        ]
