from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from repository.manifest import Task
from service.api.deps import LimitsDep, ModelEntryDep, RuntimeDep, SettingsDep
from service.api.payloads import parse_classify
from service.api.responses import OrjsonResponse
from service.api.schemas import ClassifyResponse
from service.errors import LimitExceeded
from service.imaging.preprocess import decode_and_preprocess
from service.runtime.postprocess import Prediction, top_k

router = APIRouter(prefix="/v1/models", tags=["inference"])

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


def checked_top_k(k: int, limit: int) -> int:
    if k > limit:
        raise LimitExceeded(f"top_k is {k}; at most {limit}")
    return k


def predictions_json(ranked: list[Prediction]) -> list[dict[str, Any]]:
    return [{"label": p.label, "index": p.index, "score": p.score} for p in ranked]


@router.post("/{name}/classify", response_model=ClassifyResponse, openapi_extra=CLASSIFY_BODY)
async def classify(
    entry: ModelEntryDep,
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    limits: LimitsDep,
    top_k_: Annotated[int, Query(alias="top_k", ge=1, description="classes per image, best first")] = 5,
) -> OrjsonResponse:
    """Classify one or more images: multipart ``images`` files, a raw image body, or JSON base64."""
    name = entry.name
    manifest = runtime.model(name, Task.CLASSIFICATION)  # unusable model: refused before reading the body
    k = checked_top_k(top_k_, settings.max_top_k)
    payload = await parse_classify(request, limits)
    images, _ = await run_in_threadpool(
        decode_and_preprocess, payload.images, manifest.preprocessing, settings.max_image_pixels
    )
    output = await runtime.classify(name, images)
    ranked = top_k(output.probabilities, manifest.labels, k)
    return OrjsonResponse(
        {
            "model": manifest.name,
            "version": manifest.version,
            "results": [{"predictions": predictions_json(r)} for r in ranked],
        }
    )
