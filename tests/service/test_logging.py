"""The service's own loggers (``poolserve.*``) get the configured level and a handler from ``create_app``."""

from __future__ import annotations

import logging

from poolserve.service.app import create_app
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY


def test_the_configured_level_reaches_the_service_module_loggers() -> None:
    create_app(Settings(repository=REPOSITORY, log_level="debug"))
    registry_log = logging.getLogger("poolserve.service.runtime.registry")
    assert registry_log.getEffectiveLevel() == logging.DEBUG
    create_app(Settings(repository=REPOSITORY, log_level="warning"))
    assert registry_log.getEffectiveLevel() == logging.WARNING
