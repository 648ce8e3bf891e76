"""What a run measured: written by the engine as ``results.json``, read by the report and the verdict."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from poolserve.loadtests.slo import Check
from poolserve.loadtests.windows import Window


class EndpointStats(BaseModel):
    """Locust's whole-run statistics for one request name (or ``Aggregated``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    requests: int
    failures: int
    rps: float
    avg_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    avg_bytes: float


class ErrorCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    error: str
    occurrences: int


class StepResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    window: Window
    checks: list[Check]
    met: bool


class RunResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    started_at: str  # UTC, ISO 8601
    elapsed_s: float
    corpus: dict[str, object]
    endpoints: list[EndpointStats]
    total: EndpointStats
    overall: Window  # the whole run, from the same histograms as the timeline
    timeline: list[Window]  # one per second
    steps: list[StepResult]  # step-load runs only
    errors: list[ErrorCount]
    exceptions: list[str]  # errors raised inside the load generator itself: a bug, never the target's fault
