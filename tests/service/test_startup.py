"""What refuses to start, as real processes: ``poolserve serve`` and the container's entry point print one
line per problem naming what to change, exit 2, and leave nothing running."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from poolserve.service.startup import warn_misspelt
from tests.conftest import server_environment
from tests.service.conftest import ROOT

SERVE = [sys.executable, "-m", "poolserve", "serve"]
CONTAINER = [sys.executable, "-m", "poolserve.service.supervisor"]


def refused(command: list[str], **env: str) -> list[str]:
    """Run ``command`` with ``env`` added; it must exit 2 quickly, printing only its reasons."""
    done = subprocess.run(
        command, cwd=ROOT, env=server_environment() | env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) <= 2, done.stderr
    return lines


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ([], {"POOLSERVE_WORKERS": "0"}, "POOLSERVE_WORKERS='0': Input should be greater than or equal to 1"),
        (["--port", "99999"], {}, "--port=99999: Input should be less than or equal to 65535"),
        ([], {"POOLSERVE_PORT": "99999"}, "POOLSERVE_PORT='99999': Input should be less than or equal"),
        ([], {"POOLSERVE_LOG_LEVEL": "verbose"}, "POOLSERVE_LOG_LEVEL='verbose': Input should be"),
        ([], {"POOLSERVE_CORS_ORIGINS": "https://a.example"}, "list settings take JSON"),
        ([], {"POOLSERVE_API_KEY": ""}, "POOLSERVE_API_KEY='': Value error, is empty"),
        ([], {"POOLSERVE_HOST": " "}, "POOLSERVE_HOST=' ': Value error, is empty"),
        (
            [],
            {"POOLSERVE_INTRA_OP_THREADS": "100000"},
            "POOLSERVE_INTRA_OP_THREADS='100000': Input should be",
        ),
        (["--repository", "/nonexistent"], {}, "--repository='/nonexistent': not a folder"),
        ([], {"POOLSERVE_REPOSITORY": "/etc/hostname"}, "POOLSERVE_REPOSITORY='/etc/hostname': not a folder"),
        (
            [],
            {"POOLSERVE_EXECUTION_PROVIDER": "cuda", "POOLSERVE_STRICT_PROVIDER": "true"},
            "STRICT_PROVIDER",
        ),
        (["--workers", "1000"], {}, "--workers=1000: more than 4 per core"),
        (["--host", "no-such-host.invalid"], {}, "cannot listen on no-such-host.invalid:"),
    ],
    ids=[
        "workers-0",
        "port-range",
        "port-range-env",
        "log-level",
        "cors-not-json",
        "empty-key",
        "empty-host",
        "threads",
        "no-repository",
        "repository-a-file",
        "strict-cuda",
        "too-many-workers",
        "unknown-host",
    ],
)
def test_a_server_that_cannot_work_refuses_to_start_in_one_line(
    args: list[str], env: dict[str, str], says: str
) -> None:
    (line,) = refused([*SERVE, *args], **env)
    assert line.startswith("poolserve serve: ") and says in line, line


def test_a_port_in_use_is_one_line_for_the_container_entry_point_too() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        (line,) = refused(CONTAINER, POOLSERVE_PORT=port)
    assert line == f"poolserve: cannot listen on 127.0.0.1:{port}: Address already in use"
    (line,) = refused(CONTAINER, POOLSERVE_MAX_BODY_BYTES="16MiB")
    assert line.startswith("poolserve: POOLSERVE_MAX_BODY_BYTES='16MiB': Input should be a valid integer")


def test_a_misspelt_setting_is_warned_about_and_other_variables_are_not() -> None:
    said = warn_misspelt(
        {"POOLSERVE_WORKRES": "4", "POOLSERVE_IMAGE": "poolserve:1", "POOLSERVE_WORKERS": "2"}
    )
    assert said == ["POOLSERVE_WORKRES is not a setting and is ignored; did you mean POOLSERVE_WORKERS?"]


def test_serve_help_shows_the_defaults() -> None:
    done = subprocess.run(
        [*SERVE, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_environment() | {"COLUMNS": "200"},
    )
    assert "[default: 127.0.0.1]" in done.stdout and "[default: 8000]" in done.stdout, done.stdout
