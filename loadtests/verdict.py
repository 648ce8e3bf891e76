"""The run's verdict: did the deployment meet its objectives, and what load can it sustain?"""

from __future__ import annotations

from dataclasses import dataclass, replace

from poolserve.loadtests.config import RunConfig
from poolserve.loadtests.results import RunResult
from poolserve.loadtests.slo import Check, all_met, evaluate


@dataclass(frozen=True)
class Verdict:
    passed: bool
    # The whole run; in step mode the sanity checks over the whole run and the objectives over the
    # sustainable step (or the first one), each check naming which.
    checks: list[Check]
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


def _scoped(checks: list[Check], scope: str) -> list[Check]:
    """A step-load verdict mixes counts from the whole run with counts from one step: say which is which."""
    return [replace(c, objective=f"{c.objective} ({scope})") for c in checks]


def _step_scope(users: int) -> str:
    return f"step at {users} users"


def judge(config: RunConfig, result: RunResult) -> Verdict:
    sanity = _sanity(result)
    if not result.steps:
        checks = sanity + evaluate(config.slo, result.overall)
        return Verdict(all_met(checks), checks)
    sanity = _scoped(sanity, "whole run")
    met = [s for s in result.steps if s.met]
    missed = [s for s in result.steps if not s.met]
    broke_at = missed[0].window.users if missed else None
    if not met:
        first = result.steps[0]
        checks = sanity + _scoped(first.checks, _step_scope(first.window.users))
        return Verdict(False, checks, broke_at_users=broke_at)
    # Past the knee, more users can still meet the objectives while getting less done: report the best.
    best = max(met, key=lambda s: s.window.ok_rps)
    checks = sanity + _scoped(best.checks, _step_scope(best.window.users))
    return Verdict(all_met(checks), checks, best.window.users, best.window.ok_rps, broke_at)
