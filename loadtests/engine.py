"""The load generator process: ``python -m poolserve.loadtests.engine <run dir>/config.json``.

Locust is used as a library (an ``Environment`` with a local runner), which gives direct control over
the load shape and exact per-second and per-step statistics. This module imports locust, which
monkey-patches the standard library with gevent on import; that is why it runs in a process of its own.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import gevent
from locust.env import Environment
from locust.runners import Runner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter, StatsEntry

from poolserve.loadtests.config import API_KEY_ENV, RunConfig
from poolserve.loadtests.results import EndpointStats, ErrorCount, RunResult, StepResult
from poolserve.loadtests.scenarios import user_class
from poolserve.loadtests.slo import all_met, evaluate
from poolserve.loadtests.windows import Snapshot, window
from poolserve.loadtests.workload import Corpus, build_corpus

SAMPLE_EVERY_S = 1.0
PROGRESS_EVERY_S = 5


class Sampler:
    """Snapshots of the aggregated counters, once a second and on demand, relative to the run's start."""

    def __init__(self, runner: Runner, started: float) -> None:
        self.runner = runner
        self.started = started
        self.snapshots: list[Snapshot] = [self.snapshot()]

    def snapshot(self) -> Snapshot:
        total = self.runner.stats.total
        return Snapshot(
            at_s=time.monotonic() - self.started,
            users=self.runner.user_count,
            requests=total.num_requests,
            failures=total.num_failures,
            response_times=dict(total.response_times),
        )

    def loop(self) -> None:
        while True:
            gevent.sleep(SAMPLE_EVERY_S)
            self.snapshots.append(self.snapshot())
            if len(self.snapshots) > PROGRESS_EVERY_S and len(self.snapshots) % PROGRESS_EVERY_S == 1:
                last = window(self.snapshots[-PROGRESS_EVERY_S - 1], self.snapshots[-1])
                print(
                    f"[{last.end_s:6.1f}s] users={last.users:<4} {last.rps:7.1f} req/s  "
                    f"p50={last.p50_ms:g}ms p95={last.p95_ms:g}ms p99={last.p99_ms:g}ms  "
                    f"failures={last.failures}",
                    flush=True,
                )


def constant_load(config: RunConfig, runner: Runner) -> list[StepResult]:
    runner.start(config.users, config.spawn_rate)
    gevent.sleep(config.duration_s)
    return []


def step_load(config: RunConfig, runner: Runner, sampler: Sampler) -> list[StepResult]:
    """Add users step by step; stop at the first step that misses an objective, the user ceiling or the
    duration. Each step is measured after its users have spawned, so the ramp does not blur it."""
    assert config.step is not None
    steps: list[StepResult] = []
    users = min(config.step.users, config.users)
    deadline = time.monotonic() + config.duration_s
    while True:
        added = users - runner.user_count
        runner.start(users, config.spawn_rate)
        gevent.sleep(max(0.0, added / config.spawn_rate))
        start = sampler.snapshot()
        gevent.sleep(config.step.seconds)
        measured = window(start, sampler.snapshot())
        checks = evaluate(config.slo, measured)
        steps.append(StepResult(window=measured, checks=checks, met=all_met(checks)))
        print(f"step: {users} users, {measured.ok_rps:.1f} ok req/s, p95={measured.p95_ms:g}ms, "
              f"{'met' if steps[-1].met else 'MISSED'}", flush=True)  # fmt: skip
        if not steps[-1].met or users >= config.users:
            return steps
        if time.monotonic() + config.step.seconds > deadline:
            return steps
        users = min(users + config.step.users, config.users)


def endpoint_stats(entry: StatsEntry) -> EndpointStats:
    return EndpointStats(
        name=entry.name,
        requests=entry.num_requests,
        failures=entry.num_failures,
        rps=entry.total_rps,
        avg_ms=entry.avg_response_time,
        min_ms=entry.min_response_time or 0,
        max_ms=entry.max_response_time,
        p50_ms=entry.get_response_time_percentile(0.50),
        p90_ms=entry.get_response_time_percentile(0.90),
        p95_ms=entry.get_response_time_percentile(0.95),
        p99_ms=entry.get_response_time_percentile(0.99),
        avg_bytes=entry.avg_content_length,
    )


def write_final_csv(environment: Environment, base: Path) -> None:
    """Locust's own CSV layout, from the final statistics (its writer greenlet may be a second behind)."""
    import csv

    final = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for suffix, write in (("stats", final.requests_csv), ("failures", final.failures_csv)):
        with Path(f"{base}_{suffix}.csv").open("w", newline="") as handle:
            write(csv.writer(handle))
    with Path(f"{base}_exceptions.csv").open("w", newline="") as handle:
        final.exceptions_csv(csv.writer(handle))


def run(config: RunConfig, images: Corpus) -> RunResult:
    environment = Environment(user_classes=[user_class(config, images)], host=config.host)
    runner = environment.create_local_runner()
    history = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT, str(config.out_dir / "locust"))
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    sampler = Sampler(runner, started)
    background = [gevent.spawn(history), gevent.spawn(sampler.loop)]
    try:
        steps = step_load(config, runner, sampler) if config.step else constant_load(config, runner)
    finally:
        runner.quit()
        gevent.killall(background)
        history.close_files()
    sampler.snapshots.append(sampler.snapshot())
    write_final_csv(environment, config.out_dir / "locust")
    stats = runner.stats
    snaps = sampler.snapshots
    return RunResult(
        started_at=started_at,
        elapsed_s=snaps[-1].at_s,
        corpus=images.describe(),
        endpoints=[endpoint_stats(e) for _, e in sorted(stats.entries.items())],
        total=endpoint_stats(stats.total),
        overall=window(snaps[0], snaps[-1]),
        # The last snapshot, taken after the users stopped, closes a partial second: not a fair sample.
        timeline=[
            window(a, b) for a, b in itertools.pairwise(snaps) if b.at_s - a.at_s >= SAMPLE_EVERY_S / 2
        ],
        steps=steps,
        errors=[
            ErrorCount(name=e.name, error=str(e.error), occurrences=e.occurrences)
            for e in sorted(stats.errors.values(), key=lambda e: -e.occurrences)
        ],
        exceptions=[str(e["msg"]) for e in runner.exceptions.values()],
    )


def main(config_path: Path) -> None:
    config = RunConfig.model_validate_json(config_path.read_text())
    if api_key := os.environ.get(API_KEY_ENV):
        config = config.model_copy(update={"api_key": api_key})
    began = time.monotonic()
    images = build_corpus(config.seed, config.digits_dir, config.canvases_dir)
    print(
        f"corpus (seed {config.seed}) built in {time.monotonic() - began:.1f}s: {len(images.digits)} digits, "
        f"{len(images.photos)} photos, {len(images.canvases)} canvases",
        flush=True,
    )
    result = run(config, images)
    (config.out_dir / "results.json").write_text(result.model_dump_json(indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
