"""bench/ceiling.py: its pieces run on the real model and digit, and its arithmetic and report are checked on
made-up rounds whose answers are known."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from bench import ceiling, payloads
from bench.suite import ROOT
from poolserve.models.mnist import held_out_split

META = {
    "command": "python -m bench.ceiling --quick",
    "git_commit": "0123456789abcdef",
    "cpu": "test CPU",
    "cores": 2,
    "server_core": "0",
    "client_core": "1",
    "concurrency": 32,
    "plan": ceiling.QUICK,
    "load_before": 1.0,
    "load_after": 1.0,
}


def _server(rps: float, cpu_us_per_request: float, p99_ms: float = 10.0) -> dict[str, Any]:
    requests = int(rps * 2)  # a 2 s run
    return {
        "throughput_rps": rps,
        "requests": requests,
        "server_cpu_s": cpu_us_per_request * requests / 1e6,
        "p99_ms": p99_ms,
        "errors": 0,
    }


def _round(number: int, poolserve_rps: float) -> dict[str, Any]:
    # floor: 100 µs of HTTP + 100 µs of work = 200 µs, so the ceiling is 5000 req/s and the aim 2500
    round_: dict[str, Any] = {
        "round": number,
        "servers": {"noop": _server(10_000, 100.0), "poolserve": _server(poolserve_rps, 500.0)},
        "pieces_us": {"decode": 50.0, "onnxruntime": 30.0, "softmax": 5.0, "top-k": 14.0, "json": 1.0},
    }
    round_["derived"] = ceiling.derive(round_)
    return round_


def test_the_ceiling_is_one_second_over_the_http_floor_plus_the_work() -> None:
    derived = _round(0, 2000)["derived"]
    assert derived["http_us"] == pytest.approx(100.0)
    assert derived["floor_us"] == pytest.approx(200.0)
    assert derived["ceiling_rps"] == pytest.approx(5000.0)
    assert derived["aim_rps"] == pytest.approx(2500.0)
    assert derived["of_aim"] == pytest.approx(0.8)
    assert derived["of_ceiling"] == pytest.approx(0.4)
    assert derived["glue_us"] == pytest.approx(300.0)


def test_the_report_shows_the_median_round_and_every_rounds_range() -> None:
    rounds = [_round(0, 2000), _round(1, 3000), _round(2, 1000)]
    assert ceiling.median_round(rounds)["round"] == 0
    report = ceiling.markdown({"meta": META, "model": "lenet5-mnist", "rounds": rounds})
    assert "round 0" in report
    assert "| poolserve ÷ aim | **0.80** | 0.40–1.20 |" in report
    assert "| **the floor (sum)** | **200.0** | 200.0–200.0 |" in report
    assert "| poolserve, served | 2000 | 1000–3000 |" in report
    for what in ceiling.PIECES.values():
        assert what in report


def test_every_piece_runs_on_the_shipped_model_and_costs_something() -> None:
    entry = ROOT / "model_repository" / ceiling.MODEL / "1"
    answer = orjson.dumps({"model": ceiling.MODEL, "predictions": [[{"label": "7", "score": 0.9}]]})
    pieces = ceiling.work_pieces(entry, payloads.digit_png(), answer)
    assert set(pieces) == set(ceiling.PIECES)
    decoded = pieces["decode"][0]()
    assert isinstance(decoded, tuple)
    assert decoded[0].shape == (1, 1, 28, 28)
    ranked = pieces["top-k"][0]()
    assert ranked[0][0]["label"] == str(held_out_split().test.labels[0])  # type: ignore[index]
    timings = ceiling.time_pieces(pieces, number=64, repeat=2)
    assert set(timings) == set(ceiling.PIECES)
    assert all(math.isfinite(us) and us > 0 for us in timings.values())
