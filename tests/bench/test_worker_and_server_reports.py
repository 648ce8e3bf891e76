"""bench.workers and bench.servers without running them: core lists, worker counts, and the reports
rendered from results of a known shape (the lead's re-runs go through the same code)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import servers, workers
from bench.pinned import parse_cores, short_commit

META: dict[str, Any] = {
    "git_commit": "0123456789abcdef0123+dirty",
    "started": "2026-01-01T00:00:00+00:00",
    "cpu": "test CPU",
    "cores": 2,
    "wall_s": 60.0,
    "loadavg_start": [1.0, 1.0, 1.0],
    "loadavg_end": [1.0, 1.0, 1.0],
    "server_cores": "0,1",
    "client_cores": "1",
    "client_shares_server_cores": [1],
}


def row(rps: float, **labels: Any) -> dict[str, Any]:
    measured = {"throughput_rps": rps, "p99_ms": 10.0, "errors": 0, "duration_s": 3.0, "foreign_cpu_s": 0.0}
    return {**measured, **labels}


@pytest.mark.parametrize(("spec", "cores"), [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0,2-3,2", [0, 2, 3])])
def test_core_lists_read_as_taskset_does(spec: str, cores: list[int]) -> None:
    assert parse_cores(spec) == cores


@pytest.mark.parametrize(
    ("cores", "counts"), [(1, [1]), (2, [1, 2]), (6, [1, 2, 4, 6]), (16, [1, 2, 4, 8, 16])]
)
def test_worker_counts_double_up_to_the_cores(cores: int, counts: list[int]) -> None:
    assert workers.worker_counts(cores) == counts


def test_the_workers_report_gives_each_pass_and_the_ratio_to_one_worker() -> None:
    runs = [
        row(rps, model="lenet5-mnist", workers=n, concurrency=8, busiest_process_share=1 / n, **{"pass": p})
        for n, p, rps in [(1, 1, 100.0), (1, 2, 300.0), (2, 1, 500.0), (2, 2, 300.0)]
    ]
    report = workers.markdown({"meta": {**META, "plan": {}}, "runs": runs})
    assert "`0123456789ab+dirty`" in report
    assert "sharing core(s) [1]" in report
    assert "| 8 | 200 req/s [100, 300] (1.00x)" in report
    assert "400 req/s [500, 300] (2.00x)" in report


def test_the_servers_report_gives_granian_over_uvicorn_per_core_set() -> None:
    plan = {"concurrencies": [32], "core_sets": ["0:1"]}
    runs = [
        row(rps, core_set="0:1", server=server, app=app, concurrency=32, **{"pass": p})
        for server, app, rps in [("uvicorn", "poolserve", 100.0), ("granian", "poolserve", 150.0)]
        for p in (1, 2)
    ]
    meta = {**META, "plan": plan, "versions": {}, "shared_cores": {"0:1": []}}
    report = servers.markdown({"meta": meta, "runs": runs})
    assert "## Server on core(s) 0, wrk on 1\n" in report
    assert "| poolserve | 32 | 100 [100, 100] | 10.0 | 150 [150, 150] | 10.0 | 1.50 |" in report


def test_a_clean_commit_is_shown_without_a_mark() -> None:
    assert short_commit("0123456789abcdef") == "0123456789ab"
