"""Every route of the HTTP API, in one list; routes themselves live in ``routes/<resource>.py``."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from poolserve.service.api.deps import (
    require_api_key,
    require_api_key_for_health,
    require_api_key_for_metrics,
)
from poolserve.service.api.error_responses import openapi_responses
from poolserve.service.api.routes import classify, features, health, metrics, models, v2

PROBLEMS = openapi_responses()


def include_routes(app: FastAPI) -> None:
    """Each router straight onto the app, the inference hot path first.

    FastAPI matches a request by walking the included routers in order, nesting included; one level and
    the inference routes first keep routing to a few microseconds of a digit classification's cost.
    """
    # Direct routes check the API key themselves (poolserve.service.api.direct): no router-level dependencies.
    app.include_router(classify.router, responses=PROBLEMS)
    app.include_router(features.router, responses=PROBLEMS)
    app.include_router(models.router, dependencies=[Depends(require_api_key)], responses=PROBLEMS)
    app.include_router(v2.router, dependencies=[Depends(require_api_key)])
    app.include_router(health.router, dependencies=[Depends(require_api_key_for_health)])
    app.include_router(metrics.router, dependencies=[Depends(require_api_key_for_metrics)])
    app.include_router(v2.health_router, dependencies=[Depends(require_api_key_for_health)])
