"""Every route of the HTTP API, in one list; routes themselves live in ``routes/<resource>.py``."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from poolserve.service.api.deps import (
    require_api_key,
    require_api_key_for_health,
    require_api_key_for_metrics,
)
from poolserve.service.api.error_responses import openapi_responses
from poolserve.service.api.inference_endpoint import InferenceRoute
from poolserve.service.api.routes import classify, features, health, metrics, models, v2

PROBLEMS = openapi_responses()


def inference_routes() -> list[InferenceRoute]:
    """The routes ``InferenceDispatch`` serves (poolserve.service.api.inference_endpoint)."""
    return [classify.route, features.route, *v2.infer_routes]


def include_routes(app: FastAPI) -> None:
    """Every router. Each inference route is on its router too, declared the ordinary FastAPI way: that
    declaration is its OpenAPI operation, while ``InferenceDispatch`` serves its requests. Both check the
    API key with ``deps.require_api_key``: the endpoint through ``deps.authorize``, the declaration as its
    router's dependency.
    """
    key = [Depends(require_api_key)]
    app.include_router(classify.router, dependencies=key, responses=PROBLEMS)
    app.include_router(features.router, dependencies=key, responses=PROBLEMS)
    app.include_router(models.router, dependencies=key, responses=PROBLEMS)
    app.include_router(v2.router, dependencies=key)
    app.include_router(health.router, dependencies=[Depends(require_api_key_for_health)])
    app.include_router(metrics.router, dependencies=[Depends(require_api_key_for_metrics)])
    app.include_router(v2.health_router, dependencies=[Depends(require_api_key_for_health)])
