from __future__ import annotations

import json
from pathlib import Path

from poolserve.loadtests import report
from poolserve.loadtests.config import Slo, StepLoad
from poolserve.loadtests.results import ErrorCount, StepResult
from poolserve.loadtests.slo import all_met, evaluate
from poolserve.loadtests.verdict import judge
from poolserve.loadtests.windows import Window
from tests.loadtests.conftest import make_config, make_result, make_window

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_step_run_writes_markdown_plots_and_summary(tmp_path: Path) -> None:
    slo = Slo(max_error_rate=0.01, p95_ms=100)
    config = make_config(slo, StepLoad(users=2, seconds=5), out_dir=tmp_path)
    windows = [make_window(users=u, requests=20 * u, p95=30 * u) for u in (2, 4, 6)]
    steps = [StepResult(window=w, checks=evaluate(slo, w), met=all_met(evaluate(slo, w))) for w in windows]
    timeline = [Window(t, t + 1, 2 + t // 5 * 2, 40, int(t == 7), 10, 20 + t, 40 + t) for t in range(15)]
    result = make_result(windows[-1], steps).model_copy(
        update={
            "timeline": timeline,
            "errors": [ErrorCount(name="features", error="HTTP 503", occurrences=1)],
        }
    )
    verdict = judge(config, result)
    path = report.write(config, result, verdict)

    text = path.read_text()
    assert "**PASSED**" in text and "at 2 users" in text and "missed at 4 users" in text
    assert "HTTP 503" in text and "| 4 |" in text
    for png in (report.TIMELINE_PNG, report.CONCURRENCY_PNG):
        assert f"]({png})" in text
        assert (tmp_path / png).read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] and summary["sustainable_users"] == 2
    assert "api_key" not in summary["config"]


def test_a_missed_objective_reads_as_failed(tmp_path: Path) -> None:
    config = make_config(Slo(max_error_rate=0), out_dir=tmp_path)
    result = make_result(make_window(failures=3))
    verdict = judge(config, result)
    assert "**FAILED**" in report.write(config, result, verdict).read_text()
    assert "MISS error rate" in report.console_summary(result, verdict)
    assert not (tmp_path / report.CONCURRENCY_PNG).exists()
