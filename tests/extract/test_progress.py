"""The plain progress lines (stderr not a terminal, as in a log file or a Ray job)."""

from __future__ import annotations

import pytest

from poolserve.extract.pipeline import Progress
from poolserve.extract.progress import ProgressReport


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("with_boxes", [True, False])
def test_boxes_per_second_only_for_region_models(
    capsys: pytest.CaptureFixture[str], with_boxes: bool
) -> None:
    report = ProgressReport(6, 0, "local", with_boxes=with_boxes)
    report(Progress(6, 9 if with_boxes else 0, 1))
    report.close()
    (line,) = _lines(capsys)
    assert line.startswith("extract: 6/6 images, ") and line.endswith(" 1 errors")
    assert ("boxes/s" in line) is with_boxes


def test_the_final_count_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    # Every step prints (as one does when a whole Ray shard arrives after the log interval).
    report = ProgressReport(6, 0, "ray", with_boxes=False, log_every_s=0.0)
    report(Progress(3, 0, 0))
    report(Progress(3, 0, 0))
    report.close()
    assert [line.split(",")[0] for line in _lines(capsys)] == ["extract: 3/6 images", "extract: 6/6 images"]


def test_a_job_with_nothing_left_still_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    ProgressReport(6, 6, "local").close()
    assert [line.split(",")[0] for line in _lines(capsys)] == ["extract: 6/6 images"]
