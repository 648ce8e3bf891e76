"""The deployment under test: the operator's URL, or a poolserve started here on loopback for the run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from poolserve.loadtests.config import TargetModels

STOP_TIMEOUT_S = 15.0


class TargetUnavailableError(RuntimeError):
    """The target did not become ready, or lists no model a scenario could use."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base_url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise TargetUnavailableError(f"the local poolserve exited with status {process.returncode}")
        try:
            answer = httpx.get(f"{base_url}/health/ready", timeout=5)
            if answer.status_code == 200:
                return
            if process is not None and _serves_nothing(answer):
                raise TargetUnavailableError("the local poolserve loaded no model it can serve")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TargetUnavailableError(
                f"{base_url}/health/ready did not answer 200 within {timeout_s:.0f}s"
            )
        time.sleep(0.2)


@contextmanager
def local_poolserve(repository: Path | None, log_path: Path, ready_timeout_s: float) -> Iterator[str]:
    """``uvicorn poolserve.service.app:create_app --factory`` on 127.0.0.1 and a free port; stopped
    (SIGTERM, then
    SIGKILL) on exit. Its output goes to ``log_path``, keeping the run's console for the load generator."""
    port = free_loopback_port()
    env = dict(os.environ)
    if repository is not None:
        env["POOLSERVE_REPOSITORY"] = str(repository.resolve())
    command = [sys.executable, "-m", "uvicorn", "poolserve.service.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        base_url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_ready(base_url, ready_timeout_s, process)
            except TargetUnavailableError as exc:  # the reason is in the server's own log: show it
                raise TargetUnavailableError(f"{exc}: {_first_error(log_path)} (log: {log_path})") from None
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serves_nothing(answer: httpx.Response) -> bool:
    """A poolserve whose loading is over with no model serving (``unavailable``, not ``loading``): a
    server started here stays that way, so waiting on for it would only delay the reason."""
    try:
        return answer.status_code == 503 and answer.json().get("status") == "unavailable"
    except ValueError:
        return False


def _first_error(log_path: Path) -> str:
    """The server log's first ERROR line without its logger name, else its last line."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "its log is unreadable"
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        logger, _, message = errors[0].partition(": ")
        return message or logger
    return lines[-1] if lines else "it logged nothing"


def ready_models(base_url: str, api_key: str | None) -> TargetModels:
    headers = {"X-API-Key": api_key} if api_key else {}
    listed = httpx.get(f"{base_url}/v1/models", headers=headers, timeout=10)
    if listed.status_code == 401:  # httpx's own text says nothing of the option that fixes it
        given = "the key given is wrong" if api_key else "no key was given"
        raise TargetUnavailableError(
            f"{base_url} wants an API key and {given}: pass --api-key or set POOLSERVE_API_KEY"
        )
    listed.raise_for_status()
    by_task: dict[str, list[str]] = {"classification": [], "region-features": []}
    for model in listed.json().get("models", []):
        if model.get("status") == "ready" and model.get("task") in by_task:
            by_task[model["task"]].append(model["name"])
    return TargetModels(classification=by_task["classification"], region_features=by_task["region-features"])
