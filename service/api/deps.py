"""Dependencies, typed with ``Annotated``: what routes get from the app (built once, in the lifespan)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from service.api.payloads import RequestLimits
from service.errors import Unauthorized
from service.metrics import ServiceMetrics
from service.runtime.inference import Runtime
from service.runtime.registry import ModelEntry, ModelRegistry
from service.settings import Settings

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_registry(request: Request) -> ModelRegistry:
    return (await get_runtime(request)).registry


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_limits(settings: Annotated[Settings, Depends(get_settings)]) -> RequestLimits:
    return RequestLimits(
        max_images=settings.max_images_per_request,
        max_boxes=settings.max_boxes_per_request,
        max_body_bytes=settings.max_body_bytes,
    )


async def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)],
    key: Annotated[str | None, Security(_api_key_header)],
) -> None:
    """No-op unless ``api_key`` is configured; then ``X-API-Key`` must match (compared in constant time)."""
    if settings.api_key is None:
        return
    if key is None or not secrets.compare_digest(key.encode(), settings.api_key.encode()):
        raise Unauthorized("missing or wrong X-API-Key header")


async def known_model(
    name: str, request: Request, registry: Annotated[ModelRegistry, Depends(get_registry)]
) -> ModelEntry:
    """The model named in the path (404 if the repository lacks it), tagged for the metrics middleware.

    Only names the repository knows become metric labels, so random URLs cannot grow the label set.
    """
    entry = registry.get(name)
    request.state.model = entry.name
    return entry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
LimitsDep = Annotated[RequestLimits, Depends(get_limits)]
ModelEntryDep = Annotated[ModelEntry, Depends(known_model)]
