from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from poolserve.loadtests.config import RunConfig, Scenario, TargetModels, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30), ("30s", 30), ("2m", 120), ("1m30s", 90), ("1h", 3600), ("0.5s", 0.5), (" 45s ", 45)],
)
def test_parses_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "10x", "-5s", "0s", "2h", "1m-3s"])
def test_rejects_bad_or_unbounded_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def _config(host: str) -> RunConfig:
    return RunConfig(
        scenario=Scenario.MIXED,
        host=host,
        users=2,
        spawn_rate=1,
        duration_s=5,
        models=TargetModels(classification=["a"], region_features=[]),
        out_dir=Path("runs"),
    )


def test_host_must_be_an_http_url() -> None:
    assert _config("http://127.0.0.1:8000/").host == "http://127.0.0.1:8000"
    with pytest.raises(ValidationError, match="http"):
        _config("127.0.0.1:8000")
