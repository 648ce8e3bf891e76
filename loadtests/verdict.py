"""The run's verdict: did the deployment meet its objectives, and what load can it sustain?"""

from __future__ import annotations

from dataclasses import dataclass

from poolserve.loadtests.config import RunConfig
from poolserve.loadtests.results import RunResult
from poolserve.loadtests.slo import Check, all_met, evaluate


@dataclass(frozen=True)
class Verdict:
    passed: bool
    checks: list[Check]  # the whole run, or in step mode the sustainable step
    sustainable_users: int | None = None  # step mode: the step with the most successful req/s that met
    sustainable_rps: float | None = None  # every objective, and those req/s
    broke_at_users: int | None = None  # step mode: the step that missed one, if any


def _sanity(result: RunResult) -> list[Check]:
    """Always checked: a run that sent nothing, or whose generator crashed, proves nothing."""
    served = result.overall.requests
    return [
        Check("requests completed", "> 0", str(served), served > 0),
        Check("load generator exceptions", "== 0", str(len(result.exceptions)), not result.exceptions),
    ]


def judge(config: RunConfig, result: RunResult) -> Verdict:
    sanity = _sanity(result)
    if not result.steps:
        checks = sanity + evaluate(config.slo, result.overall)
        return Verdict(all_met(checks), checks)
    met = [s for s in result.steps if s.met]
    missed = [s for s in result.steps if not s.met]
    broke_at = missed[0].window.users if missed else None
    if not met:
        checks = sanity + result.steps[0].checks
        return Verdict(False, checks, broke_at_users=broke_at)
    # Past the knee, more users can still meet the objectives while getting less done: report the best.
    best = max(met, key=lambda s: s.window.ok_rps)
    checks = sanity + best.checks
    return Verdict(all_met(checks), checks, best.window.users, best.window.ok_rps, broke_at)
