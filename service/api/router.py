"""Every route of the HTTP API, in one list; routes themselves live in ``routes/<resource>.py``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.deps import require_api_key, require_api_key_for_health, require_api_key_for_metrics
from service.api.problems import openapi_responses
from service.api.routes import classify, features, health, metrics, models, v2

PROBLEMS = openapi_responses()

api_router = APIRouter()
api_router.include_router(health.router, dependencies=[Depends(require_api_key_for_health)])
api_router.include_router(metrics.router, dependencies=[Depends(require_api_key_for_metrics)])
api_router.include_router(models.router, dependencies=[Depends(require_api_key)], responses=PROBLEMS)
api_router.include_router(classify.router, dependencies=[Depends(require_api_key)], responses=PROBLEMS)
api_router.include_router(features.router, dependencies=[Depends(require_api_key)], responses=PROBLEMS)
api_router.include_router(v2.health_router, dependencies=[Depends(require_api_key_for_health)])
api_router.include_router(v2.router, dependencies=[Depends(require_api_key)])
