"""bench/report.py's raw onnxruntime reference: measured at both ends of a model's block, the ratio is
taken against their mean, and the report says both figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report
from bench.run import ROOT

RESULTS = ROOT / "bench" / "results" / "results.json"


def _with_raw(start: float, end: float) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    raw = results["raw_ort"]["resnet"]
    raw.update(start_images_per_s=start, end_images_per_s=end, best_images_per_s=(start + end) / 2)
    return results


def _poolserve_peak(results: dict[str, Any]) -> float:
    curves = report._curves(results["runs"])
    return report._peak(curves[("resnet18-gap", "poolserve", "classify")])


def test_the_reference_is_the_mean_of_both_ends_and_both_are_reported() -> None:
    results = _with_raw(30.0, 10.0)
    text = report.markdown(results)
    assert (
        "before the servers ran (30.0) and after them (10.0); their mean is the figure compared with: 20.0"
        in text
    )
    ratio = _poolserve_peak(results) / 20.0
    batch = results["raw_ort"]["resnet"]["best_batch_size"]
    assert f"| raw onnxruntime in-process, no HTTP (batch {batch}) | 20.0 |" in text
    assert f"| {ratio:.2f} | ≥ 0.9 |" in text


def test_results_from_before_the_second_measurement_still_report(tmp_path: Path) -> None:
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    for raw in results["raw_ort"].values():
        for key in ("start_images_per_s", "end_images_per_s"):
            raw.pop(key, None)
    assert "measured again for three times as long (the figure compared with)" in report.markdown(results)
