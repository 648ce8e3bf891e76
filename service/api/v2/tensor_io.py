"""A poolserve model as the Open Inference Protocol sees it: named tensors in, named tensors out.

Tensors are checked against the model's IO (``poolserve.service.runtime.model_io``), then run through the
same ``Runtime`` calls ``/v1`` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from poolserve.repository.manifest import TensorSpec
from poolserve.service.api.limits import RequestLimits
from poolserve.service.api.v2.codec import WireTensor, datatype_of
from poolserve.service.errors import InvalidRequest, LimitExceeded
from poolserve.service.runtime.model_io import ClassifierIO, RegionIO, TaskIO
from poolserve.service.runtime.registry import ServingModel
from poolserve.service.runtime.runtime import Runtime


def _dims(spec: TensorSpec) -> list[int]:
    # Symbolic dims are dynamic (-1); the batch dim is always -1, as fixed-batch graphs run in slices.
    return [-1 if i == 0 or not isinstance(d, int) else d for i, d in enumerate(spec.shape)]


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": _dims(spec)}


def check_input(spec: TensorSpec, tensor: WireTensor) -> np.ndarray:
    expected = datatype_of(spec.dtype)
    if tensor.datatype != expected:
        raise InvalidRequest(f"input {spec.name!r}: datatype {tensor.datatype}, the model takes {expected}")
    dims = _dims(spec)
    if len(tensor.shape) != len(dims) or any(
        d != -1 and d != s for d, s in zip(dims, tensor.shape, strict=True)
    ):
        raise InvalidRequest(f"input {spec.name!r}: shape {list(tensor.shape)}, the model takes {dims}")
    if 0 in tensor.shape[1:]:
        # Only the batch (or box) count may be zero; an empty image has nothing for the model to compute.
        raise InvalidRequest(f"input {spec.name!r}: shape {list(tensor.shape)} has an empty dimension")
    return tensor.array


def raw_input(io: TaskIO, raw: bytes) -> WireTensor:
    """Raw mode: the body is the one input; its batch size follows from the byte count."""
    specs = io.inputs
    if len(specs) != 1:
        raise InvalidRequest(f"raw binary bodies need a single-input model; this one takes {len(specs)}")
    spec = specs[0]
    dims = _dims(spec)
    if any(d == -1 for d in dims[1:]):
        raise InvalidRequest("raw binary body: the model's input has dynamic dims besides the batch")
    datatype = datatype_of(spec.dtype)
    per_item = int(np.prod(dims[1:])) * np.dtype(spec.dtype).itemsize
    if len(raw) == 0 or len(raw) % per_item:
        raise InvalidRequest(f"raw body of {len(raw)} bytes is not a whole number of {per_item}-byte items")
    shape = (len(raw) // per_item, *dims[1:])
    return WireTensor(
        spec.name, datatype, shape, np.frombuffer(raw, dtype=np.dtype(spec.dtype)).reshape(shape)
    )


def _by_name(io: TaskIO, inputs: list[WireTensor]) -> dict[str, np.ndarray]:
    specs = {s.name: s for s in io.inputs}
    given: dict[str, np.ndarray] = {}
    for tensor in inputs:
        spec = specs.get(tensor.name)
        if spec is None:
            raise InvalidRequest(f"unknown input {tensor.name!r}; the model takes {sorted(specs)}")
        if tensor.name in given:
            raise InvalidRequest(f"input {tensor.name!r} given twice")
        given[tensor.name] = check_input(spec, tensor)
    missing = sorted(set(specs) - set(given))
    if missing:
        raise InvalidRequest(f"missing inputs {missing}")
    return given


async def infer(
    runtime: Runtime, model: ServingModel[TaskIO], inputs: list[WireTensor], limits: RequestLimits
) -> dict[str, np.ndarray]:
    """Every output the model gives, by name, for already-preprocessed input tensors."""
    tensors = _by_name(model.io, inputs)
    images = tensors[model.io.image.name]
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        # A preprocessed image is finite; NaN or infinity would come back as scores JSON cannot carry.
        # (Boxes are checked with the rest of the box policy, which names the row.)
        raise InvalidRequest(
            f"input {model.io.image.name!r} holds NaN or infinity; images are finite numbers"
        )
    if len(images) > limits.max_images:
        raise LimitExceeded(f"{len(images)} images; at most {limits.max_images}")
    if len(images) == 0:
        raise InvalidRequest(f"input {model.io.image.name!r} holds no images")
    if isinstance(model.io, ClassifierIO):
        output = await runtime.classify(model.for_task(ClassifierIO), images)
        return {model.io.scores.name: output.scores}
    return await _region_features(runtime, model.for_task(RegionIO), tensors, images, limits)


async def _region_features(
    runtime: Runtime,
    model: ServingModel[RegionIO],
    tensors: dict[str, np.ndarray],
    images: np.ndarray,
    limits: RequestLimits,
) -> dict[str, np.ndarray]:
    io = model.io
    boxes, indices = tensors[io.boxes.name], tensors[io.box_batch_indices.name]
    if len(boxes) > limits.max_boxes:
        raise LimitExceeded(f"{len(boxes)} boxes; at most {limits.max_boxes}")
    # Values, order, frame, batch indices and the RoI cost: checked by the runtime, as for every entry point.
    region = await runtime.features(
        model, images, boxes, indices, _row_name(io.boxes.name), max_roi_cost=limits.max_request_roi_cost
    )
    # The runtime answers per image; scatter the rows back into request order.
    order = np.argsort(indices, kind="stable")
    result = {io.features.name: _unsort(region.features, order)}
    if io.scores is not None and region.scores is not None:
        result[io.scores.name] = _unsort(region.scores, order)
    return result


def _row_name(tensor: str) -> Callable[[int], str]:
    return lambda row: f"input {tensor!r} row {row}"


def _unsort(rows: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    stacked = np.concatenate(rows) if rows else np.zeros((0,), np.float32)
    out = np.empty_like(stacked)
    out[order] = stacked
    return out
