"""Results to Parquet rows: one row per box (per image for classifiers), one schema for every engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from poolserve.extract.job import JobSpec


@dataclass(frozen=True)
class Ranked:
    """Top-k per row, best first, as columns."""

    labels: list[list[str]]
    indices: list[list[int]]
    scores: list[list[float]]

    @staticmethod
    def from_predictions(rows: Sequence[Sequence[Any]]) -> Ranked:
        """From the API's prediction dicts (``postprocess.top_k``) or the client's ``Prediction``s."""

        def column(name: str) -> list[list[Any]]:
            return [[p[name] if isinstance(p, dict) else getattr(p, name) for p in row] for row in rows]

        return Ranked(column("label"), column("index"), column("score"))


@dataclass(frozen=True)
class ImageResult:
    key: str
    size: tuple[int, int]  # (width, height), after EXIF orientation
    boxes: np.ndarray | None  # (k, 4) float32 in original pixels; None for classifiers
    category_ids: list[int] | None
    features: np.ndarray | None  # (k, D); None for classifiers
    ranked: Ranked | None  # per row; None for region models without scores


def schema(job: JobSpec) -> pa.Schema:
    """The shard schema, with the model's identity in the file metadata."""
    ranked = [
        pa.field("labels", pa.list_(pa.string())),
        pa.field("label_indices", pa.list_(pa.int32())),
        pa.field("scores", pa.list_(pa.float32())),
    ]
    fields = [pa.field("image", pa.string()), pa.field("width", pa.int32()), pa.field("height", pa.int32())]
    model = job.model
    if model.feature_dim is not None:
        value = pa.float16() if job.encoding == "float16" else pa.float32()
        fields += [
            pa.field("box_index", pa.int32()),
            pa.field("box", pa.list_(pa.float32(), 4)),
            *([pa.field("category_id", pa.int64())] if job.with_categories else []),
            pa.field("features", pa.list_(value, model.feature_dim)),
        ]
    if model.has_scores:
        fields += ranked
    metadata = {
        "poolserve.model": model.name,
        "poolserve.version": str(model.version),
        "poolserve.sha256": model.sha256,
        "poolserve.encoding": job.encoding,
        "poolserve.top_k": str(job.top_k),
    }
    return pa.schema(fields, metadata=metadata)


def _fixed(values: np.ndarray, width: int, dtype: pa.DataType) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, width)


def table(job: JobSpec, results: Sequence[ImageResult]) -> pa.Table:
    """The rows of ``results``, in order."""
    target = schema(job)
    if job.model.feature_dim is None:
        counts = [1] * len(results)
    else:
        counts = [0 if r.boxes is None else len(r.boxes) for r in results]
    columns: dict[str, Any] = {
        "image": [r.key for r, n in zip(results, counts, strict=True) for _ in range(n)],
        "width": np.repeat([r.size[0] for r in results], counts).astype(np.int32),
        "height": np.repeat([r.size[1] for r in results], counts).astype(np.int32),
    }
    dim = job.model.feature_dim
    if dim is not None:
        boxes = [r.boxes for r in results if r.boxes is not None and len(r.boxes)]
        features = [r.features for r in results if r.features is not None and len(r.features)]
        dtype = np.float16 if job.encoding == "float16" else np.float32
        columns["box_index"] = np.concatenate([np.arange(n, dtype=np.int32) for n in [0, *counts]])
        columns["box"] = _fixed(
            np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
            4,
            pa.float32(),
        )
        if job.with_categories:
            columns["category_id"] = [c for r in results for c in (r.category_ids or [])]
        stacked = np.concatenate(features) if features else np.zeros((0, dim))
        columns["features"] = _fixed(stacked.astype(dtype), dim, target.field("features").type.value_type)
    if job.model.has_scores:
        ranked = [r.ranked for r in results if r.ranked is not None]
        columns["labels"] = [row for r in ranked for row in r.labels]
        columns["label_indices"] = [row for r in ranked for row in r.indices]
        columns["scores"] = [row for r in ranked for row in r.scores]
    arrays = [pa.array(columns[f.name], type=f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target)
