"""The command's edges, in-process: typer's runner imports the command but never locust."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from poolserve.cli import app as poolserve_app
from poolserve.loadtests.cli import EXIT_CANNOT_RUN, app, run_seconds
from poolserve.loadtests.config import StepLoad

runner = CliRunner()


def test_poolserve_loadtest_is_the_same_command() -> None:
    result = runner.invoke(poolserve_app, ["loadtest", "--help"])
    assert result.exit_code == 0
    assert "poolserve loadtest [OPTIONS]" in result.output and "--step-users" in result.output


def test_a_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--duration", "soon", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not a duration" in result.output
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_an_unreachable_host_cannot_run(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        args = ["run", "--host", url, "--ready-timeout", "1s", "--output-dir", str(tmp_path)]
        result = runner.invoke(app, args)
    assert result.exit_code == EXIT_CANNOT_RUN
    assert "could not run" in result.output and "/health/ready" in result.output


def test_step_load_runs_long_enough_for_every_step_unless_told_otherwise() -> None:
    step = StepLoad(users=2, seconds=10)
    assert run_seconds(None, step, users=8, spawn_rate=4) == 4 * (10 + 0.5) + 1
    assert run_seconds("20s", step, users=8, spawn_rate=4) == 20
    assert run_seconds(None, None, users=8, spawn_rate=4) == 30
