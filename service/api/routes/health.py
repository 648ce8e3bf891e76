from __future__ import annotations

from fastapi import APIRouter

from poolserve.service.api.deps import RegistryDep
from poolserve.service.api.responses import OrjsonResponse
from poolserve.service.api.schemas import Health
from poolserve.service.runtime.registry import ModelStatus

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health)
async def live() -> OrjsonResponse:
    """The process answers; says nothing about models."""
    return OrjsonResponse({"status": "ok"})


@router.get("/ready", response_model=Health, responses={503: {"model": Health}})
async def ready(registry: RegistryDep) -> OrjsonResponse:
    """200 once loading finished and at least one model serves; 503 before (``loading``) or if none can."""
    models = {e.name: e.status for e in registry.entries()}
    if registry.is_ready:
        return OrjsonResponse({"status": "ok", "models": models})
    loading = any(s is ModelStatus.LOADING for s in models.values())
    return OrjsonResponse(
        {"status": "loading" if loading else "unavailable", "models": models}, status_code=503
    )
