from __future__ import annotations

from poolserve.loadtests.config import Slo, StepLoad
from poolserve.loadtests.results import StepResult
from poolserve.loadtests.slo import all_met, evaluate
from poolserve.loadtests.verdict import judge
from tests.loadtests.conftest import make_config, make_result, make_window


def test_each_objective_is_checked_against_its_limit() -> None:
    slo = Slo(max_error_rate=0.01, p95_ms=100, p99_ms=150, min_rps=9)
    checks = evaluate(slo, make_window(requests=100, failures=2, p95=80))
    assert [(c.objective, c.met) for c in checks] == [
        ("error rate", False),  # 2% > 1%
        ("p95 latency", True),
        ("p99 latency", False),  # 160 ms
        ("throughput (successful)", True),  # 9.8 req/s
    ]


def test_latency_objectives_are_missed_when_nothing_was_served() -> None:
    assert not all_met(evaluate(Slo(p95_ms=100), make_window(requests=0)))
    assert evaluate(Slo(), make_window()) == []


def test_a_constant_run_passes_only_without_generator_exceptions() -> None:
    config = make_config(Slo(max_error_rate=0))
    assert judge(config, make_result(make_window())).passed
    assert not judge(config, make_result(make_window(), exceptions=1)).passed
    assert not judge(config, make_result(make_window(failures=1))).passed


def test_step_load_reports_the_best_step_that_met_every_objective() -> None:
    slo = Slo(p95_ms=100)
    windows = [
        make_window(users=2, requests=60, p95=40),
        make_window(users=4, requests=100, p95=80),
        make_window(users=6, requests=90, p95=90),  # past the knee: still within the objective, less done
        make_window(users=8, requests=90, p95=300),
    ]
    steps = [StepResult(window=w, checks=evaluate(slo, w), met=all_met(evaluate(slo, w))) for w in windows]
    verdict = judge(make_config(slo, StepLoad(users=2, seconds=10)), make_result(windows[-1], steps))
    assert verdict.passed
    assert (verdict.sustainable_users, verdict.sustainable_rps, verdict.broke_at_users) == (4, 10, 8)


def test_a_step_verdict_says_which_counts_are_the_whole_runs_and_which_the_steps() -> None:
    """The sanity checks count the whole run, the objectives one step: side by side, each says which."""
    slo = Slo(max_error_rate=0.01)
    windows = [make_window(users=2, requests=60), make_window(users=4, requests=100)]
    steps = [StepResult(window=w, checks=evaluate(slo, w), met=True) for w in windows]
    whole_run = make_window(users=4, requests=399)
    verdict = judge(make_config(slo, StepLoad(users=2, seconds=10)), make_result(whole_run, steps))
    assert [(c.objective, c.measured) for c in verdict.checks] == [
        ("requests completed (whole run)", "399"),
        ("load generator exceptions (whole run)", "0"),
        ("error rate (step at 4 users)", "0.00% (0/100)"),
    ]


def test_step_load_fails_when_even_the_first_step_misses() -> None:
    slo = Slo(p95_ms=10)
    w = make_window(users=2, p95=40)
    steps = [StepResult(window=w, checks=evaluate(slo, w), met=False)]
    verdict = judge(make_config(slo, StepLoad(users=2, seconds=10)), make_result(w, steps))
    assert not verdict.passed
    assert verdict.sustainable_rps is None and verdict.broke_at_users == 2
    assert [c.objective for c in verdict.checks if not c.met] == ["p95 latency (step at 2 users)"]
