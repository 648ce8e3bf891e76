"""A model's manifest against its graph, before the model is declared ready.

The manifest says which tensors the service feeds and reads, their types, the image's size and how many
labels and feature values come back; the service builds every request from it. A manifest that disagrees
with its graph (a renamed input, another input size, a label missing) would load, report ready, and then
fail every request inside onnxruntime, or answer with labels that do not fit the scores. So before a
model serves, its tensors are compared by name and type, and a zero image of the manifest's shape (with
one box, for region models) is run through the model's own batch handler: onnxruntime must take it, and
the answer must have as many scores as the manifest has labels, and ``feature_dim`` features per box.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from poolserve.repository.manifest import Manifest, TensorSpec
from poolserve.service.runtime.batch_handlers import ClassificationHandler, RegionHandler, RegionItem
from poolserve.service.runtime.model_io import ClassifierIO, TaskIO

_ORT_TYPES = {
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "int64": "tensor(int64)",
    "int32": "tensor(int32)",
    "uint8": "tensor(uint8)",
}


class GraphMismatchError(Exception):
    """The manifest and the graph disagree; the message says where, in one line."""


def check_against_graph(
    session: ort.InferenceSession,
    manifest: Manifest,
    io: TaskIO,
    handler: ClassificationHandler | RegionHandler,
) -> None:
    """Raise ``GraphMismatchError`` unless ``session`` takes and answers what ``manifest`` describes."""
    _check_tensors("input", {t.name: t.type for t in session.get_inputs()}, io.inputs, every=True)
    _check_tensors("output", {t.name: t.type for t in session.get_outputs()}, io.outputs, every=False)
    prep = manifest.preprocessing
    image = np.zeros((1, prep.channels, prep.height, prep.width), np.float32)
    classes = len(io.labels)
    features: np.ndarray | None = None
    scores: np.ndarray | None
    try:
        if isinstance(io, ClassifierIO):
            assert isinstance(handler, ClassificationHandler)
            scores = handler.run([image])[0].scores
        else:
            assert isinstance(handler, RegionHandler)
            box = np.array([[0.0, 0.0, prep.width / 2, prep.height / 2]], np.float32)
            region = handler.run([RegionItem(image, [box])])[0]
            features, scores = region.features[0], (region.scores[0] if region.scores is not None else None)
    except Exception as exc:  # onnxruntime's own error types; its message says what it could not take
        lines = str(exc).strip().splitlines()
        raise GraphMismatchError(
            f"a zero image of the manifest's shape {list(image.shape)} fails in onnxruntime: "
            f"{lines[-1] if lines else type(exc).__name__}"
        ) from exc
    if features is not None and features.shape != (1, manifest.feature_dim):
        raise GraphMismatchError(
            f"the graph gives {features.shape[-1]} features per box; the manifest's feature_dim is "
            f"{manifest.feature_dim}"
        )
    if scores is not None and scores.shape[-1] != classes:
        raise GraphMismatchError(
            f"the graph gives {scores.shape[-1]} scores per image; the manifest has {classes} labels"
        )


def _check_tensors(kind: str, graph: dict[str, str], declared: tuple[TensorSpec, ...], every: bool) -> None:
    names = {spec.name for spec in declared}
    for spec in declared:
        if spec.name not in graph:
            raise GraphMismatchError(
                f"the manifest's {kind} {spec.name!r} is not in the graph, whose {kind}s are {sorted(graph)}"
            )
        if graph[spec.name] != _ORT_TYPES[spec.dtype]:
            raise GraphMismatchError(
                f"{kind} {spec.name!r} is {graph[spec.name]} in the graph, {spec.dtype} in the manifest"
            )
    unfed = sorted(set(graph) - names)
    if every and unfed:
        raise GraphMismatchError(f"the graph also takes {kind}s {unfed}, which the manifest does not name")
