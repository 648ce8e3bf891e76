from __future__ import annotations

from fastapi import APIRouter

from poolserve.service.api.deps import ModelEntryDep, RegistryDep
from poolserve.service.api.schemas import ModelInfo, ModelList
from poolserve.service.runtime.model_io import model_io
from poolserve.service.runtime.registry import ModelEntry

router = APIRouter(prefix="/v1/models", tags=["models"])


def model_info(entry: ModelEntry) -> ModelInfo:
    info = ModelInfo(
        name=entry.name,
        version=entry.version,
        status=entry.status,
        reason=entry.reason,
        execution_provider=entry.model.provider if entry.model else None,
    )
    manifest = entry.manifest
    if manifest is None:
        return info
    io = model_io(manifest)
    batching = entry.model.batcher.config if entry.model else None
    return info.model_copy(
        update={
            "task": manifest.task.value,
            "description": manifest.description,
            "inputs": list(io.inputs),
            "outputs": list(io.outputs),
            "preprocessing": manifest.preprocessing,
            "labels": manifest.labels,
            "feature_dim": manifest.feature_dim,
            "roi": manifest.roi,
            "sha256": manifest.sha256,
            "parity_max_abs_error": manifest.verification.max_abs_error,
            "parity_tolerance": manifest.verification.tolerance,
            "evaluations": manifest.evaluations,
            "max_batch_size": batching.max_batch_size if batching else None,
            "max_queue_delay_ms": batching.max_queue_delay_ms if batching else None,
            "pooling": manifest.pooling,
        }
    )


@router.get("", response_model=ModelList)
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model in the repository (newest version), loaded or not, with its status."""
    return ModelList(models=[model_info(e) for e in registry.entries()])


@router.get("/{name}", response_model=ModelInfo)
async def get_model(entry: ModelEntryDep) -> ModelInfo:
    return model_info(entry)
