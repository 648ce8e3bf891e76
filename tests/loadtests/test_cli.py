"""The command's edges, in-process: typer's runner imports the command but never locust."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poolserve.cli import app as poolserve_app
from poolserve.loadtests.cli import EXIT_CANNOT_RUN, app, run_directory, run_seconds
from poolserve.loadtests.config import Scenario, StepLoad
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, running_server

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


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--digits", "nosuch"], "nosuch is not a folder"),
        (["--canvases", "nosuch"], "nosuch is not a folder"),
        (["--host", "127.0.0.1:8000"], "127.0.0.1:8000: expected http://HOST:PORT or https://HOST"),
        (["--host", "http://[::1"], "http://[::1 is not a URL"),
        (["--repository", "/nonexistent"], "/nonexistent is not a folder"),
    ],
)
def test_a_bad_path_or_url_is_a_usage_error(tmp_path: Path, args: list[str], said: str) -> None:
    """A typo must not quietly change what is sent (a corpus swapped for another) or wait for nothing."""
    result = runner.invoke(app, ["run", *args, "--ready-timeout", "1s", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and said in " ".join(result.output.replace("│", " ").split()), result.output
    assert not list(tmp_path.iterdir())


def test_a_missing_default_corpus_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository root: no tests/data here
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = runner.invoke(app, ["run", "--host", url, "--ready-timeout", "0.2s", "--output-dir", "runs"])
    assert result.exit_code == EXIT_CANNOT_RUN
    assert f"warning: no tests/data/digits/ here ({tmp_path})" in result.output
    assert "pass --canvases DIR" in result.output


def test_a_local_server_with_no_model_fails_at_once_with_its_reason(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    started = time.monotonic()
    args = ["run", "--repository", str(empty), "--ready-timeout", "120s", "--output-dir", str(tmp_path / "r")]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_CANNOT_RUN
    assert time.monotonic() - started < 60  # not the whole --ready-timeout
    said = " ".join(result.output.split())
    assert f"the local poolserve loaded no model it can serve: no models found in {empty}" in said, said
    assert "server.log)" in said


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[str]:
    with running_server(Settings(repository=REPOSITORY, api_key="right")) as url:
        yield url


def test_a_keyed_target_says_how_to_pass_the_key(
    keyed_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POOLSERVE_API_KEY", raising=False)
    for key, given in (([], "no key was given"), (["--api-key", "wrong"], "the key given is wrong")):
        args = ["run", "--host", keyed_server, *key, "--output-dir", str(tmp_path / given)]
        result = runner.invoke(app, args)
        assert result.exit_code == EXIT_CANNOT_RUN
        assert result.output.strip().endswith(
            f"{keyed_server} wants an API key and {given}: pass --api-key or set POOLSERVE_API_KEY"
        ), result.output


def test_an_unknown_model_is_named(keyed_server: str, tmp_path: Path) -> None:
    args = [
        "run",
        "--host",
        keyed_server,
        "--api-key",
        "right",
        "--model",
        "nosuch",
        "--output-dir",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_CANNOT_RUN
    assert "--model nosuch: the target has no ready model of that name (ready: " in result.output


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    folders = [run_directory(tmp_path / "runs", Scenario.MIXED) for _ in range(3)]  # within a second
    assert len(set(folders)) == 3 and all(folder.is_dir() for folder in folders)
