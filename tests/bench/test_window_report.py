"""bench/window.py's report from a results file made up here: the medians, the ratios to no window and the
verdict are what the lead's re-run will publish, so they are checked on numbers whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import window

META = {
    "started": "2026-01-01T00:00:00+00:00",
    "git_commit": "0123456789abcdef",
    "cpu": "test CPU",
    "cores": 2,
    "command": "python -m bench.window --quick",
    "plan": {"rounds": 3},
    "policies": window.POLICIES,
    "server_cores": "0",
    "client_cores": "1",
    "loadavg_start": [0.5, 0.5, 0.5],
    "loadavg_end": [0.7, 0.7, 0.7],
    "wall_s": 60.0,
}


def _run(policy: str, concurrency: int, rate: float, p99: float, round_no: int) -> dict[str, Any]:
    return {
        "model": "lenet5-mnist",
        "policy": policy,
        "round": round_no,
        "concurrency": concurrency,
        "images_per_s": rate,
        "p50_ms": p99 / 2,
        "p95_ms": p99 * 0.8,
        "p99_ms": p99,
        "mean_batch_images": concurrency / 2,
        # no window waits at c=1 (an idle batcher); under load the windows other than delay0 do, sometimes
        "window_wait_ms_per_batch": 0.0 if concurrency == 1 or policy == "delay0" else 0.5 * round_no,
        "batches_waited_share": 0.0 if concurrency == 1 or policy == "delay0" else 0.25 * round_no,
        "cpu_us_per_image": 1e6 / rate,
        "errors": 0,
        "duration_s": 2.0,
        "foreign_cpu_on_server_core_s": 0.0,
    }


def _results() -> dict[str, Any]:
    runs = []
    for concurrency, rates in (
        (1, {"delay0": 100, "max-delay": 100, "measured": 100}),
        (32, {"delay0": 200, "max-delay": 150, "measured": 190}),
    ):
        for policy, rate in rates.items():
            # three rounds; the median is the middle one, whatever the order
            for round_no, factor in enumerate((1.1, 1.0, 0.5)):
                runs.append(_run(policy, concurrency, rate * factor, 10.0 * concurrency / rate, round_no))
    return {"meta": META, "runs": runs}


def test_cells_are_medians_over_rounds() -> None:
    cell = window.cells(_results()["runs"])[("lenet5-mnist", "measured", 32)]
    assert cell["images_per_s"] == 190 and cell["images_per_s_min"] == 95 and cell["rounds"] == 3


def test_report_divides_by_no_window_and_names_the_worst_cells(tmp_path: Path) -> None:
    path = tmp_path / "window.json"
    path.write_text(json.dumps(_results()))
    md, png = window.write_report(path)
    text = md.read_text()
    # wait: the median round's 0.5 ms, and the most batches any round held open (50 %); CPU: median round
    assert "| max-delay | 32 | 150.0 (75–165) | 1.1 | 2.1 | 16.0 | 0.50 (50%) | 6667 | 0.75 | 1.33 |" in text
    assert "| measured | 32 | 190.0 (95–209) | 0.8 | 1.7 | 16.0 | 0.50 (50%) | 5263 | 0.95 | 1.05 |" in text
    assert "| measured | 1 | 100.0 (50–110) | 0.1 | 0.1 | 0.5 | 0.00 (0%) | 10000 | 1.00 | 1.00 |" in text
    assert "throughput 0.95× (lenet5-mnist, c=32), p99 1.05× (lenet5-mnist, c=32)" in text
    # c=1: measured held no batch open, so there it ran exactly what delay0 runs; c=32 it did wait
    assert "the ratio there measures the host, not the policy): lenet5-mnist c=1." in text
    assert png.read_bytes().startswith(b"\x89PNG")
