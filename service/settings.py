"""The service's one configuration object: environment variables prefixed ``POOLSERVE_`` and ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ProviderChoice = Literal["auto", "cpu", "cuda"]


def default_repository() -> Path:
    """``model_repository/`` in the working directory if there is one, else the one shipped beside the code.

    The working directory wins so that ``poolserve serve`` run from any checkout serves that checkout's
    models; the source-tree fallback makes an editable install work from anywhere with zero configuration.
    """
    here = Path.cwd() / "model_repository"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "model_repository"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POOLSERVE_", env_file=".env", extra="ignore")

    repository: Path = Field(default_factory=default_repository)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    access_log: bool = True  # uvicorn's line per request at "info" (`poolserve serve`)

    # server processes sharing the listening socket (`poolserve serve --workers`, docs/deploy.md); each
    # gets cores // workers onnxruntime intra-op threads unless intra_op_threads is set
    workers: int = Field(default=1, ge=1)

    # onnxruntime
    execution_provider: ProviderChoice = "auto"
    strict_provider: bool = False  # refuse to start instead of falling back to the CPU
    # 0: onnxruntime decides; unset: see workers. Bounded: a pool of thousands of threads never finishes
    # starting, and the model never loads.
    intra_op_threads: int = Field(default=0, ge=0, le=1024)
    inter_op_threads: int = Field(default=0, ge=0, le=1024)

    # request limits
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=4096 * 4096, ge=1)
    max_images_per_request: int = Field(default=64, ge=1)
    max_boxes_per_request: int = Field(default=1024, ge=1)
    max_top_k: int = Field(default=100, ge=1)
    request_timeout_s: float = Field(default=30.0, gt=0)
    # cost budgets (docs/limits.md): decoded pixels per request, from the headers before any decoding;
    # requests decoding in worker threads at once (more get 503); JPEGs decoded at 1/2..1/8 scale
    # when the model's input is that much smaller
    max_request_pixels: int = Field(default=2 * 4096 * 4096, ge=1)
    # model-input pixels per request (images x the model's input height x width): inference cost grows
    # with it; 4 Mi is 64 digit-sized or 16 512x512 images
    max_request_input_pixels: int = Field(default=4 * 1024 * 1024, ge=1)
    # region models: the input cells the RoI op reads per channel for all of a request's boxes together
    # (poolserve.service.runtime.region_inputs.roi_box_costs), checked before onnxruntime sees a box.
    # On mtcnn-onet-regions one box reads 9216 to 2359296 by size: 1e8 lets through 1024 boxes of up to
    # 144 px of its input, or 42 of the largest, and its worst request costs ~5 CPU s instead of ~29
    # (bench/results/worst_request.md; docs/limits.md, the RoI budget)
    max_request_roi_cost: int = Field(default=100_000_000, ge=1)
    max_concurrent_decodes: int = Field(default=4, ge=1)
    # requests waiting for one of those decode slots; more get 503 at once
    max_queued_decodes: int = Field(default=64, ge=0)
    reduced_jpeg_decode: bool = True
    # Requests whose images total at most this many encoded bytes are decoded on the event loop: for
    # them the hop to a worker thread costs more than the decode (docs/benchmarks.md). 0: always a thread.
    # The same threshold places /v2's tensor parsing and encoding (poolserve.service.api.offload).
    inline_decode_max_bytes: int = Field(default=8192, ge=0)
    # SIGTERM: stop accepting, give in-flight requests this long (uvicorn's timeout_graceful_shutdown)
    shutdown_grace_s: float = Field(default=30.0, ge=0)

    # dynamic batching; None keeps each manifest's own batching defaults
    max_batch_size: int | None = Field(default=None, ge=1)
    max_queue_delay_ms: float | None = Field(default=None, ge=0)
    queue_capacity: int = Field(default=256, ge=1)  # queued requests per model before 503
    # how long a batch waits for more requests under load, capped by max_queue_delay_ms: "measured" while
    # its oldest request has queued less than the batch is expected to run, "max-delay" the whole cap
    # (docs/benchmarks.md, the batching window)
    batch_window: Literal["measured", "max-delay"] = "measured"
    # batches expected to take at most this long (measured per image) run on the event loop instead of
    # the model's worker thread, whose hand-offs cost more than a tiny batch; 0: always the thread
    inline_batch_max_ms: float = Field(default=0.5, ge=0)
    # a batch still running after max(stall_min_s, stall_factor x its expected time, measured per image)
    # stalled: its model answers 503, readiness turns false, the process restarts (docs/limits.md). The
    # floor was 4x the costliest request the limits allowed on one core before max_request_roi_cost
    # (~29 CPU s on mtcnn-onet-regions; ~5 since, bench/results/worst_request.md), so that no request
    # within the limits can restart the process
    stall_min_s: float = Field(default=120.0, gt=0)
    stall_factor: float = Field(default=20.0, gt=0)

    # once the models are in, move every object start-up left alive out of the garbage collector's reach
    # (gc.freeze), so that its full collections stop walking them: under load those walks stalled every
    # request for 60-70 ms on average (poolserve.service.gc_tuning, bench/results/gc.md)
    gc_freeze: bool = True

    # HTTP connections (docs/limits.md): a request head must be complete this long after its first byte;
    # an idle kept-alive connection closes after keep_alive_timeout_s; past max_connections open
    # connections (or requests in progress), new requests get 503 + Retry-After (slow_clients)
    header_timeout_s: float = Field(default=10.0, gt=0)
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)

    # HTTP
    cors_origins: list[str] = Field(default_factory=list)
    # FastAPI's own OpenTelemetry instrumentation, through the process's configured providers; off, the
    # app skips its per-request check for them (poolserve's metrics are Prometheus, /metrics)
    opentelemetry: bool = False
    # when set, /v1 requires ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``)
    api_key: str | None = None
    # routes that stay open with an api_key set: probes and scrapers usually hold no secret
    auth_exempt_health: bool = True
    auth_exempt_metrics: bool = True

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value  # INFO, as Python's logging writes it

    @field_validator("api_key", "host")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        # An empty key would lock every route behind a secret nobody can send; an empty host would bind
        # every interface. Both are more likely a variable set to nothing than a choice.
        if value is not None and not value.strip():
            raise ValueError("is empty; unset it for the default, or give a value")
        return value
