"""The app factory: ``uvicorn poolserve.service.app:create_app --factory``. Settings in, a wired FastAPI
app out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import onnxruntime as ort
from fastapi import FastAPI

from poolserve import __version__
from poolserve.service.api import error_responses
from poolserve.service.api.cors import CORS
from poolserve.service.api.inference_endpoint import InferenceDispatch
from poolserve.service.api.limits import RequestLimits
from poolserve.service.api.middleware import RequestGuard
from poolserve.service.api.offload import DecodeSlots
from poolserve.service.api.responses import OrjsonResponse
from poolserve.service.api.router import include_routes, inference_routes
from poolserve.service.gc_tuning import GcPauseRecorder, freeze_loaded_heap
from poolserve.service.metrics import ServiceMetrics
from poolserve.service.runtime.providers import select_providers
from poolserve.service.runtime.registry import BatchOverrides, ModelRegistry
from poolserve.service.runtime.runtime import Runtime
from poolserve.service.runtime.sessions import SessionConfig
from poolserve.service.runtime.watchdog import (
    EXIT_INFERENCE_STALLED,
    Watchdog,
    WatchdogConfig,
    request_shutdown,
)
from poolserve.service.settings import Settings

log = logging.getLogger(__name__)


def build_registry(settings: Settings, metrics: ServiceMetrics) -> ModelRegistry:
    selection = select_providers(
        settings.execution_provider, ort.get_available_providers(), settings.strict_provider
    )
    if selection.warning:
        log.warning(selection.warning)
    return ModelRegistry(
        settings.repository,
        SessionConfig(selection.providers, settings.intra_op_threads, settings.inter_op_threads),
        BatchOverrides(
            settings.max_batch_size,
            settings.max_queue_delay_ms,
            settings.queue_capacity,
            settings.inline_batch_max_ms,
            settings.batch_window,
        ),
        observer=metrics,
    )


def build_watchdog(settings: Settings, registry: ModelRegistry) -> Watchdog:
    loop = asyncio.get_running_loop()
    config = WatchdogConfig(
        min_s=settings.stall_min_s,
        factor=settings.stall_factor,
        exit_after_s=settings.shutdown_grace_s + 5.0,
    )
    # The 503s and a readiness probe or two get out first; then the same graceful stop an orchestrator's
    # SIGTERM would start (the listener closes, other models' requests drain, the process exits).
    return Watchdog(registry.guards, config, loop, lambda _: loop.call_later(1.0, request_shutdown))


async def load_models(registry: ModelRegistry, settings: Settings, metrics: ServiceMetrics) -> None:
    """Load every model, then (``gc_freeze``) freeze the heap start-up built. Nothing awaits between the
    two, so no request is served in between: readiness turns true with the heap already frozen."""
    await registry.load_all()
    if settings.gc_freeze:
        frozen = freeze_loaded_heap()
        metrics.gc_frozen.set(frozen)
        log.info("models loaded; %d objects frozen out of the garbage collector's reach", frozen)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Models load in the background: /health/live answers at once, /health/ready once they are in;
    with ``serve_after_load`` (``create_app``) start-up waits for them."""
    settings, metrics = app.state.settings, app.state.metrics
    registry = build_registry(settings, metrics)
    registry.discover()
    app.state.runtime = Runtime(registry)
    loading = asyncio.create_task(load_models(registry, settings, metrics), name="load-models")
    watchdog = build_watchdog(settings, registry)
    watchdog.start()
    if app.state.serve_after_load:
        await registry.wait_loaded()
    try:
        with GcPauseRecorder(metrics.gc_paused):
            yield
    finally:
        watchdog.stop()
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
        stuck = await registry.close()
        if stuck:
            # Their threads never return, and the interpreter's exit would wait for them forever.
            log.critical("inference in %s never returned; exiting without waiting for it", stuck)
            logging.shutdown()
            os._exit(EXIT_INFERENCE_STALLED)


def configure_logging(level: str) -> None:
    """Give the ``poolserve`` loggers a handler unless the host process configured one (uvicorn only sets up
    its own loggers, so without this a failed model would be reported by ``logging.lastResort`` alone)."""
    logger = logging.getLogger("poolserve")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)


def create_app(settings: Settings | None = None, serve_after_load: bool = False) -> FastAPI:
    """``serve_after_load``: start-up ends (and the server accepts connections) only once the models
    are in, for a replacement server beside others (``poolserve.service.supervisor``)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="poolserve",
        version=__version__,
        summary="Pooling CNNs (classification, RoI region features) served from ONNX.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.serve_after_load = serve_after_load
    app.state.limits = RequestLimits.of(settings)
    app.state.metrics = ServiceMetrics()
    error_responses.install(app)
    include_routes(app)
    app.state.inference_routes = inference_routes()
    app.add_middleware(InferenceDispatch, routes=app.state.inference_routes)
    # Metrics, the error boundary, the time and body limits and the decode slots: one layer, answering
    # its errors in the route family's shape (poolserve.service.api.middleware); CORS outside it.
    app.add_middleware(
        RequestGuard,
        metrics=app.state.metrics,
        max_body_bytes=settings.max_body_bytes,
        timeout_s=settings.request_timeout_s,
        decode_slots=DecodeSlots(settings.max_concurrent_decodes, settings.max_queued_decodes),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORS,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            # without these a browser's preflight for an authenticated JSON request is refused
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
            expose_headers=["Retry-After", "X-Box-Counts"],
        )
    return app
