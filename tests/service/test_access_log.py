"""``POOLSERVE_ACCESS_LOG``: uvicorn's line per request under ``poolserve serve``'s server config, or none."""

from __future__ import annotations

import httpx
import pytest

from poolserve.service.serve import server_config
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, running_server

LINE = '"GET /health/live HTTP/1.1" 200'


@pytest.mark.parametrize("access_log", [True, False])
def test_the_access_log_follows_the_setting(capfd: pytest.CaptureFixture[str], access_log: bool) -> None:
    settings = Settings(repository=REPOSITORY, log_level="info", access_log=access_log)
    with running_server(settings, config_of=lambda app: server_config(app, settings)) as url:
        assert httpx.get(f"{url}/health/live").status_code == 200
    out, err = capfd.readouterr()
    assert (LINE in out + err) is access_log


def test_the_access_log_is_on_by_default() -> None:
    assert Settings(repository=REPOSITORY).access_log
