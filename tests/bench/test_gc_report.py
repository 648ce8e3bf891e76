"""bench/gc.py's report from a results file made up here: the medians, the ratios to the unfrozen heap,
the collector's columns and the summary are checked on numbers whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import gc as gc_bench
from tests.bench.test_window_report import META as WINDOW_META

META = {
    **WINDOW_META,
    "command": "python -m bench.gc --quick",
    "policies": gc_bench.GC.policies,
    "baseline": gc_bench.GC.baseline,
    "new": gc_bench.GC.new,
}


def _run(policy: str, concurrency: int, rate: float, p99: float, full_ms: float) -> dict[str, Any]:
    return {
        "model": "lenet5-mnist",
        "policy": policy,
        "round": 0,
        "concurrency": concurrency,
        "images_per_s": rate,
        "p50_ms": 10.0,
        "p95_ms": 20.0,
        "p99_ms": p99,
        "mean_batch_images": 8.0,
        "cpu_us_per_image": 300.0,
        "gc_pause_ms_per_s": full_ms / 5,
        "gc_full_collections": 2.0,
        "gc_full_ms_mean": full_ms,
        "errors": 0,
        "duration_s": 5.0,
        "foreign_cpu_on_server_core_s": 0.0,
    }


def _results() -> dict[str, Any]:
    runs = []
    for concurrency, unfrozen, frozen in (
        (8, (2000, 40.0, 80.0), (2200, 20.0, 2.0)),
        (32, (2000, 80.0, 90.0), (1900, 40.0, 3.0)),
    ):
        for factor in (1.0, 1.1, 0.9):  # three rounds; the median is the first
            runs.append(
                _run("no-freeze", concurrency, unfrozen[0] * factor, unfrozen[1] * factor, unfrozen[2])
            )
            runs.append(_run("freeze", concurrency, frozen[0] * factor, frozen[1] * factor, frozen[2]))
    return {"meta": META, "runs": runs}


def test_report_divides_by_the_unfrozen_heap_and_shows_the_collector(tmp_path: Path) -> None:
    path = tmp_path / "gc.json"
    path.write_text(json.dumps(_results()))
    md, png = gc_bench.write_report(path)
    text = md.read_text()
    assert "| no-freeze | 8 | 2000.0 (1800–2200) | 10.0 | 20.0 | 40.0 | 16.0 | 2 (80.0) | – | – |" in text
    assert "| freeze | 8 | 2200.0 (1980–2420) | 10.0 | 20.0 | 20.0 | 0.4 | 2 (2.0) | 1.10 | 0.50 |" in text
    assert "| freeze | 32 | 1900.0 (1710–2090) | 10.0 | 20.0 | 40.0 | 0.6 | 2 (3.0) | 0.95 | 0.50 |" in text
    assert (
        "`freeze` against `no-freeze`: throughput from 0.95× (lenet5-mnist c=32) to "
        "1.10× (lenet5-mnist c=8); p99 from 0.50× (lenet5-mnist c=8) to 0.50× (lenet5-mnist c=32)." in text
    )
    assert png.read_bytes().startswith(b"\x89PNG")
