from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from poolserve.service.api.deps import MetricsDep, RegistryDep
from poolserve.service.runtime.registry import ModelStatus

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep, registry: RegistryDep) -> Response:
    """Prometheus text exposition of this app's own registry."""
    for entry in registry.entries():
        metrics.model_ready.labels(entry.name).set(1 if entry.status is ModelStatus.READY else 0)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
