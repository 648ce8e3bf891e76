"""bench/gpu.sh on the CPU path (``--provider cpu --quick``): the script a GPU run depends on, exercised
end to end here so a typo cannot waste the run. Asserts the results' shape and correctness, never speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_cpu_run_writes_every_result(tmp_path: Path):
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable, "BENCH_COMMIT": "test"}
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), "--provider", "cpu", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CPUExecutionProvider" in (out / "environment.txt").read_text()
    assert "skipped" in (out / "pytest-gpu.txt").read_text()  # the gpu tests ran, and skip without CUDA

    results = json.loads((out / "gpu.json").read_text())
    assert results["commit"] == "test" and results["provider"] == "CPUExecutionProvider"
    roi = results["roi"]
    assert roi["rewrite_equals_kernel"] is True
    assert set(roi["ops"]) == {"RoiAlign", "MaxRoiPool", "RoIPool rewrite"}
    for op in roi["ops"].values():
        assert op["max_abs_diff_vs_cpu"] == 0.0
        assert set(op["nodes_by_provider"]) == {"CPUExecutionProvider"}
    assert set(results["raw"]) == {"host_arrays", "io_binding"}
    assert all(v > 0 for per in results["raw"].values() for v in per.values())
    assert [r["concurrency"] for r in results["poolserve"]] == [1, 4]
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in results["poolserve"])
    assert results["poolserve_over_raw"] > 0
    assert "poolserve / raw" in (out / "gpu.md").read_text()


def test_unknown_arguments_are_refused():
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), "--provder", "cpu"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "unknown argument --provder" in done.stderr
