"""bench/openvino.py: the verdict rule and the report on a small results dict, and the measuring child run
for real (this virtualenv's onnxruntime, CPU provider; the OpenVINO virtualenv where it is built).
Asserts the results' shape, parity and placement, never speed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bench.openvino import CONFIGS, Plan, _prepare, measure, merge_rounds
from bench.openvino_report import markdown, verdicts, winners
from bench.suite import VENVS

OPENVINO_PYTHON = VENVS / "openvino" / "bin" / "python"


def _child(ms: dict[str, float], diff: dict[str, float], cpu_ops: list[str]) -> dict[str, Any]:
    ops = {"CPUExecutionProvider": cpu_ops, "OpenVINOExecutionProvider": ["OpenVINO-EP-subgraph_1"]}
    return {
        "ms_per_batch": {label: {"1": v, "8": 8 * v} for label, v in ms.items()},
        "max_abs_diff": diff,
        "session_create_s": {label: 0.1 for label in ms},
        "placement": {label: {"ops": ops} for label in ms},
    }


def _results() -> dict[str, Any]:
    """Three models: OpenVINO 1.5x both CPU builds; 1.5x the openvino build's CPU provider but slower than
    the shipped one; fast but outside the manifest's tolerance."""
    ok = {"cpu": 0.0, "openvino": 1e-6, "openvino-fp32": 1e-6}
    children = {
        "wins": _child({"cpu": 3.0, "openvino": 2.0, "openvino-fp32": 2.0}, ok, []),
        "shipped-faster": _child({"cpu": 3.0, "openvino": 2.0, "openvino-fp32": 2.0}, ok, ["MaxRoiPool"]),
        "drifts": _child({"cpu": 3.0, "openvino": 2.0, "openvino-fp32": 2.0}, {**ok, "openvino": 1e-2}, []),
    }
    shipped = {"wins": 3.0, "shipped-faster": 1.9, "drifts": 3.0}
    main = {name: _child({"cpu": v}, {"cpu": 0.0}, []) for name, v in shipped.items()}
    results: dict[str, Any] = {
        "metadata": {
            "git_commit": "abc123",
            "cpu": "test CPU",
            "cores": 2,
            "started": "2026-01-01T00:00:00+00:00",
            "load_average_before": [0.1, 0.1, 0.1],
            "load_average_after": [0.2, 0.1, 0.1],
        },
        "plan": {"name": "quick", "rounds": 1, "seconds": 0.05},
        "configs": CONFIGS,
        "rule": "the rule",
        "models": {
            name: {"roi_op": "MaxRoiPool", "tolerance": 1e-4, "boxes_per_batch": {"1": 4, "8": 24}}
            for name in children
        },
        "openvino_venv": {"1 core": {"onnxruntime": "1.0-ov", "models": children}},
        "main_venv_cpu": {"1 core": {"onnxruntime": "1.0", "models": main}},
    }
    results["verdicts"] = verdicts(results)
    return results


def test_verdicts_take_the_faster_cpu_build_and_the_manifest_tolerance():
    v = _results()["verdicts"]
    assert v["wins"]["openvino"] == {
        "min_speedup": 1.5,
        "max_speedup": 1.5,
        "max_abs_diff": 1e-6,
        "parity_within_tolerance": True,
        "wins": True,
    }
    assert v["shipped-faster"]["openvino"]["min_speedup"] == 0.95
    assert not v["shipped-faster"]["openvino"]["wins"]
    assert v["drifts"]["openvino"]["parity_within_tolerance"] is False
    assert not v["drifts"]["openvino"]["wins"] and v["drifts"]["openvino-fp32"]["wins"]


def test_report_names_the_winners_placement_and_run():
    results = _results()
    assert winners(results) == ["wins (openvino)", "wins (openvino-fp32)", "drifts (openvino-fp32)"]
    text = markdown(results)
    assert "python -m bench.openvino` --quick" in text and "abc123" in text and "[0.1, 0.1, 0.1]" in text
    assert "| wins | 1 core | 8 (24) | 24.00 | 24.00 | 333 | 16.00 | 500 | 1.50x |" in text
    assert (
        "| shipped-faster | MaxRoiPool | 0.0001 | 1e-06 | 1e-06 | MaxRoiPool (1 OpenVINO subgraph) |" in text
    )
    assert text.rstrip().endswith(
        "OpenVINO wins on wins (openvino), wins (openvino-fp32), drifts (openvino-fp32)."
    )


@pytest.fixture(scope="module")
def digit_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    scratch = tmp_path_factory.mktemp("openvino")
    plan = Plan("test", ("digits-roialign", "digits-roipool"), (2,), ((0,),), 1, 0.0)
    table, described = _prepare(plan, scratch)
    assert described["digits-roipool"]["roi_op"] == "MaxRoiPool"
    assert described["digits-roialign"]["boxes_per_batch"]["2"] > 0
    return table, scratch


def test_child_run_under_this_onnxruntime(digit_inputs: tuple[dict[str, Any], Path]):
    table, scratch = digit_inputs
    plan = Plan("test", tuple(table), (2,), ((0,),), 1, 0.0)
    rounds = [
        measure(Path(sys.executable), table, {"cpu": CONFIGS["cpu"]}, (0,), plan, scratch) for _ in range(2)
    ]
    merged = merge_rounds(rounds)
    assert merged["onnxruntime"] == ort.__version__ and merged["cores"] == [0] and merged["rounds"] == 2
    expected = np.median([r["models"]["digits-roialign"]["ms_per_batch"]["cpu"]["2"] for r in rounds])
    assert merged["models"]["digits-roialign"]["ms_per_batch"]["cpu"]["2"] == pytest.approx(expected)
    for name, op in (("digits-roialign", "RoiAlign"), ("digits-roipool", "MaxRoiPool")):
        model = merged["models"][name]
        assert model["max_abs_diff"] == {"cpu": 0.0}
        assert op in model["placement"]["cpu"]["ops"]["CPUExecutionProvider"]


@pytest.mark.skipif(not OPENVINO_PYTHON.exists(), reason="no .bench-venvs/openvino (python -m bench setup)")
def test_openvino_takes_roialign_and_leaves_maxroipool_to_the_cpu(digit_inputs: tuple[dict[str, Any], Path]):
    table, scratch = digit_inputs
    plan = Plan("test", tuple(table), (2,), ((0,),), 1, 0.0)
    configs = {label: CONFIGS[label] for label in ("cpu", "openvino")}
    result = measure(OPENVINO_PYTHON, table, configs, (0,), plan, scratch)
    assert "OpenVINOExecutionProvider" in result["available_providers"]
    align = result["models"]["digits-roialign"]["placement"]["openvino"]["ops"]
    pool = result["models"]["digits-roipool"]["placement"]["openvino"]["ops"]
    assert "CPUExecutionProvider" not in align and align["OpenVINOExecutionProvider"]
    assert pool["CPUExecutionProvider"] == ["MaxRoiPool"]
    for model in result["models"].values():
        assert model["max_abs_diff"]["openvino"] < 1e-4  # both manifests' verification tolerance
