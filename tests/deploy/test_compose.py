"""docker-compose.yml passes every user-tunable setting through to the container: a setting the compose
file forgets is silently dropped, because compose hands the container only the variables it lists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from poolserve.service.settings import Settings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "POOLSERVE_"
# Fixed by the image, on purpose: the port mapping and the healthcheck need the bind address and port,
# the models mount needs the repository path, compose's stop_grace_period the drain time.
FIXED_BY_IMAGE = {"host", "port", "repository", "shutdown_grace_s"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def passed_through() -> set[str]:
    environment = compose()["x-api"]["environment"]
    assert all(name.startswith(PREFIX) for name in environment), sorted(environment)
    return {name.removeprefix(PREFIX).lower() for name in environment}


def test_every_setting_is_passed_through_or_fixed_by_the_image() -> None:
    settings = set(Settings.model_fields)
    forgotten = settings - passed_through() - FIXED_BY_IMAGE
    assert not forgotten, f"add {sorted(PREFIX + f.upper() for f in forgotten)} to x-api.environment"


def test_compose_names_no_setting_that_does_not_exist() -> None:
    unknown = passed_through() - set(Settings.model_fields)
    assert not unknown, f"no such setting: {sorted(PREFIX + f.upper() for f in unknown)}"


def test_the_fixed_settings_are_neither_passed_through_nor_left_to_the_default() -> None:
    """What compose leaves out, the runtime image sets itself."""
    assert not passed_through() & FIXED_BY_IMAGE
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime_stage = dockerfile[dockerfile.rindex("AS runtime") :]
    set_by_image = {m.lower() for m in re.findall(rf"\b{PREFIX}(\w+)=", runtime_stage)}
    assert set_by_image >= FIXED_BY_IMAGE


def test_unset_variables_stay_unset_in_the_container() -> None:
    """A bare key passes the variable through only when set; ``${VAR-}`` would hand the service an empty
    string, which an int or bool setting refuses. Only explicit defaults may interpolate."""
    environment = compose()["x-api"]["environment"]
    for name, value in environment.items():
        assert value is None or re.fullmatch(rf"\$\{{{name}:-[^}}]+\}}", str(value)), (name, value)
