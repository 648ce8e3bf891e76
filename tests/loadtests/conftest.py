"""Load-test fixtures. Nothing here imports locust: its gevent monkey-patching would leak into the other
tests, so the only real load runs in a child process (test_smoke.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolserve.loadtests.config import RunConfig, Scenario, Slo, StepLoad, TargetModels
from poolserve.loadtests.results import EndpointStats, RunResult, StepResult
from poolserve.loadtests.windows import Window
from poolserve.loadtests.workload import Corpus, build_corpus

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = ROOT / "model_repository"  # the shipped entries, as tests/service uses them
DIGITS = ROOT / "tests" / "data" / "digits"
CANVASES = ROOT / "tests" / "data" / "canvases"


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    return build_corpus(0, DIGITS, CANVASES)


def make_window(users: int = 4, requests: int = 100, failures: int = 0, p95: float = 50) -> Window:
    return Window(0, 10, users, requests, failures, p50_ms=p95 / 2, p95_ms=p95, p99_ms=p95 * 2)


def make_result(overall: Window, steps: list[StepResult] | None = None, exceptions: int = 0) -> RunResult:
    total = EndpointStats(
        name="Aggregated", requests=overall.requests, failures=overall.failures, rps=overall.rps,
        avg_ms=1, min_ms=1, max_ms=1, p50_ms=1, p90_ms=1, p95_ms=1, p99_ms=1, avg_bytes=1,
    )  # fmt: skip
    return RunResult(
        started_at="2026-01-01T00:00:00+00:00",
        elapsed_s=overall.seconds,
        corpus={},
        endpoints=[total.model_copy(update={"name": "classify multipart"})],
        total=total,
        overall=overall,
        timeline=[overall],
        steps=steps or [],
        errors=[],
        exceptions=["boom"] * exceptions,
    )


def make_config(slo: Slo, step: StepLoad | None = None, out_dir: Path = Path("runs")) -> RunConfig:
    return RunConfig(
        scenario=Scenario.MIXED, host="http://127.0.0.1:1", users=8, spawn_rate=8, duration_s=60, step=step,
        slo=slo, models=TargetModels(classification=["m"], region_features=[]), out_dir=out_dir,
    )  # fmt: skip
