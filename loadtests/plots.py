"""PNG plots of a run (matplotlib's object API: no pyplot, no global figure state, no display needed)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from poolserve.loadtests.config import Slo
from poolserve.loadtests.results import RunResult

DPI = 100


def timeline(result: RunResult, slo: Slo, path: Path) -> None:
    """Throughput (with users), latency percentiles and failures, one point per second."""
    points = result.timeline
    t = [w.end_s for w in points]
    figure = Figure(figsize=(9, 8), dpi=DPI, layout="constrained")
    throughput, latency, errors = figure.subplots(3, 1, sharex=True)
    throughput.plot(t, [w.ok_rps for w in points], label="successful req/s", color="tab:blue")
    throughput.set_ylabel("requests / s")
    users = throughput.twinx()
    users.step(t, [w.users for w in points], where="post", color="tab:gray", alpha=0.6, label="users")
    users.set_ylabel("users")
    throughput.legend(loc="upper left")
    users.legend(loc="upper right")
    throughput.set_title("Throughput")
    for name, color in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        latency.plot(t, [getattr(w, f"{name}_ms") for w in points], label=name, color=color)
    for name, limit, color in (("p95 SLO", slo.p95_ms, "tab:orange"), ("p99 SLO", slo.p99_ms, "tab:red")):
        if limit is not None:
            latency.axhline(limit, linestyle="--", color=color, alpha=0.7, label=name)
    latency.set_ylabel("ms (per second)")
    latency.set_title("Latency percentiles")
    latency.legend(loc="upper left")
    errors.bar(t, [w.failures for w in points], width=0.8, color="tab:red", label="failures / s")
    errors.set_ylabel("failures / s")
    errors.set_xlabel("seconds since start")
    errors.set_title(f"Errors ({result.overall.failures} of {result.overall.requests} requests)")
    errors.set_ylim(bottom=0, top=max(1, *(w.failures for w in points)) * 1.2 if points else 1)
    figure.savefig(path)


def concurrency(result: RunResult, sustainable_users: int | None, path: Path) -> None:
    """Step load: latency and throughput against users, one point per step."""
    steps = result.steps
    users = [s.window.users for s in steps]
    figure = Figure(figsize=(8, 4.5), dpi=DPI, layout="constrained")
    latency = figure.subplots()
    for name, color in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        latency.plot(users, [getattr(s.window, f"{name}_ms") for s in steps], "o-", color=color, label=name)
    latency.set_xlabel("concurrent users")
    latency.set_ylabel("latency (ms)")
    throughput = latency.twinx()
    throughput.plot(
        users, [s.window.ok_rps for s in steps], "s--", color="tab:blue", label="successful req/s"
    )
    throughput.set_ylabel("requests / s")
    if sustainable_users is not None:
        latency.axvline(sustainable_users, color="tab:gray", linestyle=":", label="sustainable")
    missed = [s.window.users for s in steps if not s.met]
    for u in missed:
        latency.axvspan(u - 0.5, u + 0.5, color="tab:red", alpha=0.15)
    latency.legend(loc="upper left")
    throughput.legend(loc="lower right")
    latency.set_title("Latency and throughput vs concurrency (shaded: objective missed)")
    figure.savefig(path)
