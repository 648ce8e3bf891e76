from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from poolserve.service.api.direct import DirectRoute, begin_inference, openapi_operation
from poolserve.service.api.offload import decode_images
from poolserve.service.api.payloads import check_top_k, parse_classify
from poolserve.service.api.responses import OrjsonResponse
from poolserve.service.api.schemas import ClassifyResponse
from poolserve.service.runtime.model_io import ClassifierIO
from poolserve.service.runtime.postprocess import top_k

router = APIRouter(prefix="/v1/models", tags=["inference"], route_class=DirectRoute)

_BINARY = {"type": "string", "format": "binary"}
CLASSIFY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"images": {"type": "array", "items": _BINARY}}}
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {"type": "array", "items": {"type": "string", "format": "byte"}}
                    },
                    "required": ["images"],
                }
            },
            **{m: {"schema": _BINARY} for m in ("image/png", "image/jpeg", "image/webp", "image/bmp")},
        },
    }
}


class ClassifyQuery(BaseModel):
    top_k: int = Field(5, ge=1, description="classes per image, best first")


@router.post(
    "/{name}/classify",
    response_model=ClassifyResponse,
    openapi_extra=openapi_operation(CLASSIFY_BODY, ClassifyQuery),
)
async def classify(request: Request) -> Response:
    """Classify one or more images: multipart ``images`` files, a raw image body, or JSON base64."""
    context, model, query = await begin_inference(request, ClassifyQuery, ClassifierIO)
    k = check_top_k(query.top_k, context.limits)
    payload = await parse_classify(request, context.limits)
    images, _ = await decode_images(
        payload.images, model.manifest.preprocessing, context.limits, context.settings
    )
    output = await context.runtime.classify(model, images)
    ranked = top_k(output.probabilities, model.io.labels, k)
    return OrjsonResponse(
        {
            "model": model.name,
            "version": model.version,
            "results": [{"predictions": r} for r in ranked],
        }
    )
