"""Open Inference Protocol (KServe v2 REST) over the same runtime, batcher, limits, auth and metrics as /v1.

Health lives on ``health_router`` (auth exemption as ``/health``); everything else on ``router``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

from poolserve import __version__
from poolserve.service.api.deps import LimitsDep, ModelEntryDep, RegistryDep, RuntimeDep, SettingsDep
from poolserve.service.api.error_responses import v2_error
from poolserve.service.api.inference_endpoint import InferenceCall, InferenceEndpoint, InferenceRoute
from poolserve.service.api.limits import RequestLimits
from poolserve.service.api.offload import run_sized
from poolserve.service.api.responses import OrjsonResponse
from poolserve.service.api.v2 import codec
from poolserve.service.api.v2.tensor_io import infer, raw_input, tensor_metadata
from poolserve.service.errors import InvalidRequest, ModelNotFound
from poolserve.service.runtime.model_io import TaskIO
from poolserve.service.runtime.registry import ModelEntry, ModelStatus, ServingModel
from poolserve.service.runtime.runtime import Runtime
from poolserve.service.settings import Settings

EXTENSIONS = ["binary_tensor_data", "model_configuration"]

# Errors on both answer {"error": ...}: poolserve.service.api.error_responses picks the shape by path.
health_router = APIRouter(prefix="/v2/health", tags=["kserve-v2"])
router = APIRouter(prefix="/v2", tags=["kserve-v2"])


def _versioned(entry: ModelEntry, version: str | None) -> ModelEntry:
    if version is not None and version != str(entry.version):
        raise ModelNotFound(f"model {entry.name!r} has no version {version!r}")
    return entry


async def model_version(entry: ModelEntryDep, version: str | None = None) -> ModelEntry:
    return _versioned(entry, version)


VersionedDep = Annotated[ModelEntry, Depends(model_version)]


@health_router.get("/live")
async def live() -> OrjsonResponse:
    return OrjsonResponse({"live": True})


@health_router.get("/ready")
async def ready(registry: RegistryDep) -> Response:
    if registry.is_ready:
        return OrjsonResponse({"ready": True})
    return v2_error(503, "server not ready: models loading or none serving")


@router.get("")
async def server_metadata() -> OrjsonResponse:
    return OrjsonResponse({"name": "poolserve", "version": __version__, "extensions": EXTENSIONS})


def _metadata(model: ServingModel[TaskIO]) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": [str(model.version)],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(s) for s in model.io.inputs],
        "outputs": [tensor_metadata(s) for s in model.io.outputs],
    }


def _config(model: ServingModel[TaskIO]) -> dict[str, Any]:
    batching = model.batcher.config  # the manifest's batching with the settings' overrides, as it runs
    return {
        "name": model.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        # max_batch_size > 0: as in Triton, dims leave out the batch dim.
        "max_batch_size": batching.max_batch_size,
        "input": [
            {"name": m["name"], "data_type": "TYPE_" + m["datatype"], "dims": m["shape"][1:]}
            for m in map(tensor_metadata, model.io.inputs)
        ],
        "output": [
            {"name": m["name"], "data_type": "TYPE_" + m["datatype"], "dims": m["shape"][1:]}
            for m in map(tensor_metadata, model.io.outputs)
        ],
        "dynamic_batching": {"max_queue_delay_microseconds": int(batching.max_queue_delay_ms * 1000)},
    }


def _ready(entry: ModelEntry) -> Response:
    if entry.status is ModelStatus.READY:
        return OrjsonResponse({"name": entry.name, "ready": True})
    return v2_error(503, f"model {entry.name!r} is {entry.status.value}")


async def _infer(
    entry: ModelEntry, request: Request, runtime: Runtime, limits: RequestLimits, settings: Settings
) -> Response:
    model = entry.serving()  # unusable model: refused before the body
    body = codec.decompress(
        await request.body(), request.headers.get("Content-Encoding"), limits.max_body_bytes
    )
    inline_max = settings.inline_decode_max_bytes
    length_header = request.headers.get(codec.HEADER_LENGTH)
    parsed = await run_sized(partial(codec.parse_infer, body, length_header), len(body), inline_max)
    inputs = parsed.inputs if parsed.inputs is not None else [raw_input(model.io, parsed.raw)]
    results = await infer(runtime, model, inputs, limits)
    datatypes = {s.name: tensor_metadata(s)["datatype"] for s in model.io.outputs}
    wanted = parsed.outputs or [codec.RequestedOutput(n, parsed.binary_output) for n in results]
    for out in wanted:
        if out.name not in results:
            raise InvalidRequest(f"unknown output {out.name!r}; the model gives {sorted(results)}")
    tensors = [(o.name, datatypes[o.name], results[o.name], o.binary) for o in wanted]
    encode = partial(codec.encode_response, model.name, model.version, parsed.id, tensors)
    body_out, header_length = await run_sized(encode, sum(t[2].nbytes for t in tensors), inline_max)
    if header_length is None:
        return Response(body_out, media_type="application/json")
    return Response(
        body_out,
        media_type="application/octet-stream",
        headers={codec.HEADER_LENGTH: str(header_length)},
    )


# Each endpoint twice: with and without /versions/{version}; ``model_version`` checks the version.
@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(entry: VersionedDep) -> OrjsonResponse:
    return OrjsonResponse(_metadata(entry.serving()))


@router.get("/models/{name}/config")
@router.get("/models/{name}/versions/{version}/config")
async def model_config(entry: VersionedDep) -> OrjsonResponse:
    return OrjsonResponse(_config(entry.serving()))


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(entry: VersionedDep) -> Response:
    return _ready(entry)


class VersionQuery(BaseModel):
    version: str | None = None  # the unversioned path's alternative to /versions/{version}


async def model_infer(call: InferenceCall[VersionQuery]) -> Response:
    entry = _versioned(call.entry, call.request.path_params.get("version", call.query.version))
    return await _infer(entry, call.request, call.runtime, call.limits, call.settings)


INFER_PATHS = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
infer_routes = [InferenceRoute(path, InferenceEndpoint(model_infer, VersionQuery)) for path in INFER_PATHS]


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def model_infer_route(
    entry: VersionedDep,
    request: Request,
    runtime: RuntimeDep,
    limits: LimitsDep,
    settings: SettingsDep,
) -> Response:
    return await _infer(entry, request, runtime, limits, settings)
