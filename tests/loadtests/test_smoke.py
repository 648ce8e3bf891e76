"""The CI smoke run: a few seconds of the mixed workload against a real poolserve on 127.0.0.1.

The load test runs as its own process (`python -m poolserve.loadtests run`), exactly as an operator runs
it; that
also keeps locust's gevent monkey-patching out of this pytest process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import server_environment
from tests.loadtests.conftest import REPOSITORY, ROOT

SMOKE = [
    "--scenario",
    "mixed",
    "--users",
    "2",
    "--spawn-rate",
    "2",
    "--duration",
    "4s",
    "--slo-error-rate",
    "0",
]


@pytest.mark.slow
def test_a_short_mixed_run_against_a_local_poolserve_has_zero_errors(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "poolserve.loadtests", "run", *SMOKE, "--repository", str(REPOSITORY)]
    done = subprocess.run(
        [*command, "--output-dir", str(tmp_path)],
        cwd=ROOT,
        env=server_environment(),  # the local server it starts runs on the shipped defaults
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("loadtest-mixed-")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"]
    assert summary["total"]["requests"] > 0 and summary["total"]["failures"] == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["exceptions"] == [] and results["errors"] == []
    for name in ("report.md", "timeline.png", "locust_stats.csv", "locust_stats_history.csv"):
        assert (run_dir / name).stat().st_size > 0, name
