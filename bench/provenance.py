"""What every results file records about the run that wrote it: the code (git commit), the CPU, the time."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def git_commit() -> str:
    """HEAD's hash, with ``+dirty`` when tracked files differ from it (the figures then are not HEAD's)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT, capture_output=True)
    return head.strip() + ("+dirty" if dirty.returncode else "")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run_metadata() -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def save_results(name: str, results: dict[str, Any], report: str, out: Path | None, quick: bool) -> None:
    """``name.json`` (the figures) and ``name.md`` (``report``, drawn from them) into ``out``, by default
    bench/results (bench/results/quick for a ``--quick`` run), and the report on stdout."""
    folder = out or (RESULTS / "quick" if quick else RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / f"{name}.md").write_text(report)
    print(report)
