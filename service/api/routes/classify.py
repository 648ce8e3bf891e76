from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.responses import Response

from poolserve.service.api.deps import LimitsDep, ModelEntryDep, RuntimeDep, SettingsDep
from poolserve.service.api.inference_endpoint import (
    InferenceCall,
    InferenceEndpoint,
    InferenceRoute,
    openapi_body,
)
from poolserve.service.api.offload import decode_images
from poolserve.service.api.payloads import (
    DEFAULT_TOP_K,
    ClassifyForm,
    ClassifyJSON,
    TopKQuery,
    check_top_k,
    parse_classify,
)
from poolserve.service.api.responses import OrjsonResponse
from poolserve.service.api.schemas import ClassifyResponse
from poolserve.service.imaging.image_decoder import MEDIA_TYPES
from poolserve.service.runtime.model_io import ClassifierIO
from poolserve.service.runtime.postprocess import top_k

PATH = "/v1/models/{name}/classify"
router = APIRouter(tags=["inference"])


class ClassifyQuery(TopKQuery):
    top_k: int = Field(
        DEFAULT_TOP_K, ge=1, description="classes per image, best first; by default 5, or max_top_k if lower"
    )


async def classify(call: InferenceCall[ClassifyQuery]) -> Response:
    model = call.entry.serving().for_task(ClassifierIO)
    k = check_top_k(call.query, call.limits)
    payload = await parse_classify(call.request, call.limits)
    images, _ = await decode_images(payload.images, model.manifest.preprocessing, call.limits, call.settings)
    output = await call.runtime.classify(model, images)
    ranked = top_k(output.probabilities, model.io.labels, k)
    return OrjsonResponse(
        {
            "model": model.name,
            "version": model.version,
            "results": [{"predictions": r} for r in ranked],
        }
    )


route = InferenceRoute(PATH, InferenceEndpoint(classify, ClassifyQuery))


@router.post(
    PATH,
    response_model=ClassifyResponse,
    openapi_extra=openapi_body(
        {"multipart/form-data": ClassifyForm, "application/json": ClassifyJSON}
        | dict.fromkeys(sorted(MEDIA_TYPES), bytes)
    ),
)
async def classify_route(
    request: Request,
    entry: ModelEntryDep,
    query: Annotated[ClassifyQuery, Query()],
    settings: SettingsDep,
    limits: LimitsDep,
    runtime: RuntimeDep,
) -> Response:
    """Classify one or more images: multipart ``images`` files, a raw image body, or JSON base64."""
    return await classify(InferenceCall(request, settings, limits, runtime, entry, query))
