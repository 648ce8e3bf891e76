from __future__ import annotations

import io
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import Field, TypeAdapter
from starlette.responses import Response

from poolserve.repository.manifest import Manifest
from poolserve.service.api.deps import LimitsDep, ModelEntryDep, RuntimeDep, SettingsDep
from poolserve.service.api.inference_endpoint import (
    InferenceCall,
    InferenceEndpoint,
    InferenceRoute,
    openapi_body,
)
from poolserve.service.api.negotiation import preferred
from poolserve.service.api.offload import decode_images
from poolserve.service.api.payloads import (
    DEFAULT_TOP_K,
    FeaturesForm,
    FeaturesJSON,
    TopKQuery,
    check_top_k,
    parse_features,
)
from poolserve.service.api.region_json import Encoding, region_results_json
from poolserve.service.api.responses import OrjsonResponse
from poolserve.service.api.schemas import FeaturesResponse
from poolserve.service.imaging.preprocess import map_boxes
from poolserve.service.runtime.model_io import RegionIO
from poolserve.service.runtime.runtime import RegionOutput

PATH = "/v1/models/{name}/features"
router = APIRouter(tags=["inference"])

NPY_MEDIA_TYPE = "application/x-npy"
RESPONSE_MEDIA_TYPES = ("application/json", NPY_MEDIA_TYPE)  # the default first
BOX_COUNTS_HEADER = "X-Box-Counts"
NPY_RESPONSE = {"content": {NPY_MEDIA_TYPE: {"schema": TypeAdapter(bytes).json_schema()}}}


def _npy(output: RegionOutput, feature_dim: int) -> Response:
    counts = [len(f) for f in output.features]
    stacked = np.concatenate(output.features) if counts else np.zeros((0, feature_dim), np.float32)
    buffer = io.BytesIO()
    np.save(buffer, stacked.astype(np.float32, copy=False), allow_pickle=False)
    headers = {BOX_COUNTS_HEADER: ",".join(map(str, counts))}
    return Response(buffer.getvalue(), media_type=NPY_MEDIA_TYPE, headers=headers)


def _json(
    manifest: Manifest, boxes: list[np.ndarray], output: RegionOutput, encoding: Encoding, k: int
) -> dict[str, Any]:
    return region_results_json(manifest, boxes, output, encoding, k)


class FeaturesQuery(TopKQuery):
    top_k: int = Field(
        DEFAULT_TOP_K, ge=1, description="labels per box (models with scores); 5, or max_top_k if lower"
    )
    encoding: Encoding = Field("float32", description="how JSON carries each feature vector")


async def features(call: InferenceCall[FeaturesQuery]) -> Response:
    model = call.entry.serving().for_task(RegionIO)
    k = check_top_k(call.query, call.limits)
    payload = await parse_features(call.request, call.limits)
    images, transforms = await decode_images(
        payload.images, model.manifest.preprocessing, call.limits, call.settings
    )
    sent = payload.boxes
    mapped = [map_boxes(b, t) for b, t in zip(sent, transforms, strict=True)]
    counts = [len(b) for b in sent]
    flat = np.concatenate(mapped) if mapped else np.zeros((0, 4), np.float32)
    image_of_row = np.repeat(np.arange(len(sent), dtype=np.int64), counts)
    first_row = np.cumsum([0, *counts])

    def describe(row: int) -> str:  # the box as the client sent it: image, position, original pixels
        i = int(image_of_row[row])
        j = row - int(first_row[i])
        return f"{payload.box_path.format(image=i, box=j)} {[float(v) for v in sent[i][j]]}"

    output = await call.runtime.features(
        model, images, flat, image_of_row, describe, max_roi_cost=call.limits.max_request_roi_cost
    )
    if preferred(call.request.headers.get("accept"), RESPONSE_MEDIA_TYPES) == NPY_MEDIA_TYPE:
        return _npy(output, model.io.feature_dim)
    return OrjsonResponse(_json(model.manifest, sent, output, call.query.encoding, k))


route = InferenceRoute(PATH, InferenceEndpoint(features, FeaturesQuery))


@router.post(
    PATH,
    response_model=FeaturesResponse,
    responses={200: NPY_RESPONSE},
    openapi_extra=openapi_body({"multipart/form-data": FeaturesForm, "application/json": FeaturesJSON}),
)
async def features_route(
    request: Request,
    entry: ModelEntryDep,
    query: Annotated[FeaturesQuery, Query()],
    settings: SettingsDep,
    limits: LimitsDep,
    runtime: RuntimeDep,
) -> Response:
    """RoI features for boxes given in each image's original pixel coordinates (zero boxes is fine).

    ``Accept: application/x-npy`` returns all features as one (K_total, D) float32 ``.npy`` instead, with
    each image's box count, in order, in the ``X-Box-Counts`` header.
    """
    return await features(InferenceCall(request, settings, limits, runtime, entry, query))
