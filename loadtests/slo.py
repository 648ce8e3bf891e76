"""Checking a window of traffic against the run's objectives."""

from __future__ import annotations

from dataclasses import dataclass

from poolserve.loadtests.config import Slo
from poolserve.loadtests.windows import Window


@dataclass(frozen=True)
class Check:
    objective: str  # "p95 latency"
    limit: str  # "<= 250 ms"
    measured: str  # "180 ms"
    met: bool


def evaluate(slo: Slo, observed: Window) -> list[Check]:
    """One ``Check`` per objective that is set. Latency objectives with no traffic count as missed: a run
    that served nothing has not shown it meets them."""
    checks: list[Check] = []
    served = observed.requests > 0
    if slo.max_error_rate is not None:
        checks.append(
            Check(
                "error rate",
                f"<= {slo.max_error_rate:.2%}",
                f"{observed.error_rate:.2%} ({observed.failures}/{observed.requests})",
                served and observed.error_rate <= slo.max_error_rate,
            )
        )
    for name, limit, value in (("p95", slo.p95_ms, observed.p95_ms), ("p99", slo.p99_ms, observed.p99_ms)):
        if limit is not None:
            checks.append(
                Check(f"{name} latency", f"<= {limit:g} ms", f"{value:g} ms", served and value <= limit)
            )
    if slo.min_rps is not None:
        checks.append(
            Check(
                "throughput (successful)",
                f">= {slo.min_rps:g} req/s",
                f"{observed.ok_rps:.1f} req/s",
                observed.ok_rps >= slo.min_rps,
            )
        )
    return checks


def all_met(checks: list[Check]) -> bool:
    return all(c.met for c in checks)
