"""Dependencies, typed with ``Annotated``: what routes get from the app (built once, in the lifespan)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import State

from poolserve.service.api.limits import RequestLimits
from poolserve.service.errors import ModelNotReady, Unauthorized
from poolserve.service.metrics import ServiceMetrics
from poolserve.service.runtime.registry import ModelEntry, ModelRegistry
from poolserve.service.runtime.runtime import Runtime
from poolserve.service.settings import Settings

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_limits(request: Request) -> RequestLimits:
    limits: RequestLimits = request.app.state.limits
    return limits


NOT_STARTED = (
    "the service has not started: its lifespan, which loads the models, has not run (uvicorn runs it; "
    "in-process, enter app.router.lifespan_context(app) first)"
)


def runtime_of(state: State) -> Runtime:
    """The app's runtime, made by its lifespan. An app called without its lifespan (an in-process ASGI
    transport, a server started with ``lifespan="off"``) has none: 503, not an AttributeError's 500."""
    runtime: Runtime | None = getattr(state, "runtime", None)
    if runtime is None:
        raise ModelNotReady(NOT_STARTED)
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request.app.state)


async def get_registry(request: Request) -> ModelRegistry:
    return (await get_runtime(request)).registry


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    key: Annotated[str | None, Security(_api_key_header)],
) -> None:
    """No-op unless ``api_key`` is configured; then ``Authorization: Bearer <key>`` or ``X-API-Key`` must
    match. ``hmac.compare_digest`` so the comparison takes the same time wherever a wrong key differs."""
    if settings.api_key is None:
        return
    offered = bearer.credentials if bearer is not None else key
    if offered is None or not hmac.compare_digest(offered.encode(), settings.api_key.encode()):
        raise Unauthorized("missing or wrong API key: send header 'Authorization: Bearer <key>'")


async def require_api_key_for_health(
    settings: Annotated[Settings, Depends(get_settings)], request: Request
) -> None:
    if not settings.auth_exempt_health:
        await authorize(settings, request)


async def require_api_key_for_metrics(
    settings: Annotated[Settings, Depends(get_settings)], request: Request
) -> None:
    if not settings.auth_exempt_metrics:
        await authorize(settings, request)


async def authorize(settings: Settings, request: Request) -> None:
    """``require_api_key`` for routes that read the headers themselves: exempt probes (which advertise no
    security in OpenAPI) and the inference endpoints (``poolserve.service.api.inference_endpoint``)."""
    if settings.api_key is None:
        return
    bearer = await _bearer(request)
    await require_api_key(settings, bearer, request.headers.get("X-API-Key"))


async def known_model(
    name: str, request: Request, registry: Annotated[ModelRegistry, Depends(get_registry)]
) -> ModelEntry:
    return tagged_model(registry, name, request)


def tagged_model(registry: ModelRegistry, name: str, request: Request) -> ModelEntry:
    """The model named in the path (404 if the repository lacks it), tagged for the metrics middleware.

    Only names the repository knows become metric labels, so random URLs cannot grow the label set.
    """
    entry = registry.get(name)
    request.state.model = entry.name
    return entry


SettingsDep = Annotated[Settings, Depends(get_settings)]
LimitsDep = Annotated[RequestLimits, Depends(get_limits)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ModelEntryDep = Annotated[ModelEntry, Depends(known_model)]
