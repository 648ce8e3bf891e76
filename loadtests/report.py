"""The run's report folder: ``summary.json`` and ``report.md`` with its plots, beside the engine's
``results.json`` and locust's CSV files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from poolserve.loadtests import plots
from poolserve.loadtests.config import RunConfig
from poolserve.loadtests.results import RunResult
from poolserve.loadtests.slo import Check
from poolserve.loadtests.verdict import Verdict

TIMELINE_PNG = "timeline.png"
CONCURRENCY_PNG = "latency_vs_users.png"
TOP_ERRORS = 10


def _checks_table(checks: list[Check]) -> list[str]:
    rows = ["| objective | limit | measured | |", "| --- | --- | --- | --- |"]
    rows += [
        f"| {c.objective} | {c.limit} | {c.measured} | {'met' if c.met else '**MISSED**'} |" for c in checks
    ]
    return rows


def _corpus_table(described: dict[str, object]) -> list[str]:
    rows = ["| images | count | from | media types | long sides (px) | bytes (median, max) |"]
    rows += ["| --- | ---: | --- | --- | --- | --- |"]
    for group, facts in described.items():
        if not isinstance(facts, dict):
            continue
        sides = ", ".join(f"{side}: {n}" for side, n in facts.get("long_sides", {}).items())
        rows.append(
            f"| {group} | {facts.get('count')} | {facts.get('origins')} | {facts.get('media_types')} | "
            f"{sides} | {facts.get('bytes_median')}, {facts.get('bytes_max')} |"
        )
    return rows


def _config_lines(config: RunConfig, result: RunResult) -> list[str]:
    load = (
        f"step load: +{config.step.users} users every {config.step.seconds:g}s up to {config.users}"
        if config.step
        else f"{config.users} users"
    )
    return [
        f"- scenario: `{config.scenario.value}`; {load}; spawn rate {config.spawn_rate:g}/s; "
        f"think time {config.think_ms:g} ms (mean)",
        f"- target: `{config.host}`; classifiers {config.models.classification}; "
        f"region models {config.models.region_features}",
        f"- started {result.started_at}, ran {result.elapsed_s:.1f}s; corpus seed {config.seed}; "
        f"load generator on a host with {os.cpu_count()} CPU cores",
    ]


def markdown(config: RunConfig, result: RunResult, verdict: Verdict) -> str:
    lines = [f"# Load test: {config.scenario.value}", ""]
    lines += [f"**{'PASSED' if verdict.passed else 'FAILED'}**", ""]
    lines += [*_config_lines(config, result), ""]
    if verdict.sustainable_rps is not None:
        lines += [
            f"Sustainable: **{verdict.sustainable_rps:.1f} successful req/s at "
            f"{verdict.sustainable_users} users**"
            + (f"; objectives missed at {verdict.broke_at_users} users." if verdict.broke_at_users else "."),
            "",
        ]
    where = (
        f"the step with the most successful req/s that met them ({verdict.sustainable_users} users)"
        if verdict.sustainable_users is not None
        else ("the first step" if result.steps else "the whole run")
    )
    measured = (
        f"Measured over {where}; the sanity checks over the whole run (each row says which)."
        if result.steps
        else f"Measured over {where}."
    )
    lines += ["## Objectives", "", measured, "", *_checks_table(verdict.checks), ""]
    lines += [
        "## Requests",
        "",
        "| request | count | failures | req/s | p50 ms | p95 ms | p99 ms | max ms | avg bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in [*result.endpoints, result.total]:
        lines.append(
            f"| {e.name} | {e.requests} | {e.failures} | {e.rps:.1f} | {e.p50_ms:g} | {e.p95_ms:g} | "
            f"{e.p99_ms:g} | {e.max_ms:.0f} | {e.avg_bytes:.0f} |"
        )
    lines += ["", f"![throughput, latency and errors over time]({TIMELINE_PNG})", ""]
    if result.steps:
        lines += ["## Steps", "", "| users | ok req/s | p50 ms | p95 ms | p99 ms | errors | objectives |"]
        lines += ["| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for s in result.steps:
            w = s.window
            lines.append(
                f"| {w.users} | {w.ok_rps:.1f} | {w.p50_ms:g} | {w.p95_ms:g} | {w.p99_ms:g} | "
                f"{w.error_rate:.2%} | {'met' if s.met else '**missed**'} |"
            )
        lines += ["", f"![latency and throughput vs users]({CONCURRENCY_PNG})", ""]
    if result.errors or result.exceptions:
        lines += ["## Errors", ""]
        lines += [f"- {e.occurrences}× `{e.name}`: {e.error}" for e in result.errors[:TOP_ERRORS]]
        lines += [f"- load generator exception: {x}" for x in result.exceptions[:TOP_ERRORS]]
        lines += [""]
    lines += ["## Corpus", "", *_corpus_table(result.corpus), ""]
    return "\n".join(lines)


def summary(config: RunConfig, result: RunResult, verdict: Verdict) -> dict[str, object]:
    return {
        "passed": verdict.passed,
        "checks": [c.__dict__ for c in verdict.checks],
        "sustainable_users": verdict.sustainable_users,
        "sustainable_rps": verdict.sustainable_rps,
        "broke_at_users": verdict.broke_at_users,
        "config": config.model_dump(mode="json", exclude={"api_key", "out_dir"}),
        "total": result.total.model_dump(),
        "endpoints": [e.model_dump() for e in result.endpoints],
    }


def write(config: RunConfig, result: RunResult, verdict: Verdict) -> Path:
    out = config.out_dir
    plots.timeline(result, config.slo, out / TIMELINE_PNG)
    if result.steps:
        plots.concurrency(result, verdict.sustainable_users, out / CONCURRENCY_PNG)
    (out / "summary.json").write_text(json.dumps(summary(config, result, verdict), indent=1) + "\n")
    path = out / "report.md"
    path.write_text(markdown(config, result, verdict))
    return path


def console_summary(result: RunResult, verdict: Verdict) -> str:
    """The few lines an operator reads at the end of a run."""
    o = result.overall
    lines = [
        f"{o.requests} requests in {o.seconds:.1f}s ({o.ok_rps:.1f} ok req/s), {o.failures} failed; "
        f"p50 {o.p50_ms:g} ms, p95 {o.p95_ms:g} ms, p99 {o.p99_ms:g} ms"
    ]
    if verdict.sustainable_rps is not None:
        lines.append(
            f"sustainable: {verdict.sustainable_rps:.1f} ok req/s at {verdict.sustainable_users} users"
        )
    lines += [
        f"  {'ok  ' if c.met else 'MISS'} {c.objective}: {c.measured} (limit {c.limit})"
        for c in verdict.checks
    ]
    lines.append("PASSED" if verdict.passed else "FAILED: an objective was missed")
    return "\n".join(lines)
