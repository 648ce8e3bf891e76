from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolserve.service.settings import Settings, default_repository
from tests.service.conftest import ROOT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No POOLSERVE_* variables from the caller's shell, and a working directory without a .env."""
    for key in [k for k in os.environ if k.startswith("POOLSERVE_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield


def test_environment_variables_configure_the_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POOLSERVE_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("POOLSERVE_PORT", "9123")
    monkeypatch.setenv("POOLSERVE_EXECUTION_PROVIDER", "cpu")
    monkeypatch.setenv("POOLSERVE_CORS_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv("POOLSERVE_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("POOLSERVE_MAX_REQUEST_ROI_COST", "5000000")
    settings = Settings()
    assert settings.repository == tmp_path and settings.port == 9123
    assert settings.execution_provider == "cpu" and settings.cors_origins == ["https://a.example"]
    assert settings.max_batch_size == 8 and settings.max_queue_delay_ms is None
    assert settings.max_request_roi_cost == 5_000_000


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("POOLSERVE_MAX_TOP_K=7\n")
    assert Settings().max_top_k == 7


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.execution_provider) == ("127.0.0.1", 8000, "auto")
    assert settings.api_key is None and settings.cors_origins == []
    assert settings.gc_freeze  # tests/conftest.py turns it off for in-process servers; here it is cleared
    # No ./model_repository here: fall back to the one shipped beside the source tree.
    assert default_repository() == ROOT / "model_repository"
    monkeypatch.chdir(ROOT)
    assert default_repository() == ROOT / "model_repository"


def test_the_log_level_is_read_in_either_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLSERVE_LOG_LEVEL", "WARNING")
    assert Settings().log_level == "warning"


def test_every_duration_takes_fractions_of_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("KEEP_ALIVE_TIMEOUT_S", "SHUTDOWN_GRACE_S", "HEADER_TIMEOUT_S", "REQUEST_TIMEOUT_S"):
        monkeypatch.setenv(f"POOLSERVE_{variable}", "2.5")
    settings = Settings()
    durations = (settings.keep_alive_timeout_s, settings.shutdown_grace_s, settings.header_timeout_s)
    assert durations == (2.5, 2.5, 2.5) and settings.request_timeout_s == 2.5
