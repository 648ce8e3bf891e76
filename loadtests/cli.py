"""``python -m poolserve.loadtests run`` (also ``poolserve loadtest``): one bounded, headless load test,
its report
and a verdict. Exit status: 0 every objective met, 1 one missed, 2 the test could not run.

Only typer, pydantic and the standard library load at import: ``poolserve --help`` stays fast, and
locust's gevent monkey-patching stays in the engine process.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from poolserve.loadtests.config import (
    API_KEY_ENV,
    RunConfig,
    Scenario,
    Slo,
    StepLoad,
    TargetModels,
    parse_duration,
)

EXIT_MISSED = 1
EXIT_CANNOT_RUN = 2
DEFAULT_DURATION = "30s"
# The committed corpus, found from the repository root (where the README's commands run).
DEFAULT_DIGITS = Path("tests/data/digits")
DEFAULT_CANVASES = Path("tests/data/canvases")
ENGINE_SLACK_S = 180.0  # corpus build, locust start-up and shutdown, on a busy 2-core machine

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def main() -> None:
    """Load-test a poolserve deployment with locust."""


def _seconds(text: str, option: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def corpus_dir(given: Path | None, default: Path, option: str) -> Path | None:
    """A corpus folder: one the operator named must exist (a typo must not quietly change what is sent);
    the default may be missing (run from another folder), which is said, not hidden."""
    if given is not None:
        if not given.is_dir():
            raise typer.BadParameter(f"{given} is not a folder", param_hint=option)
        return given.resolve()
    if default.is_dir():
        return default.resolve()
    typer.echo(
        f"warning: no {default}/ here ({Path.cwd()}): the corpus goes without it; "
        f"run from the repository root or pass {option} DIR",
        err=True,
    )
    return None


def check_host(host: str | None) -> str | None:
    """``--host`` as a base URL httpx can request; without a scheme it would never be contacted."""
    if host is None:
        return None
    import httpx

    try:
        url = httpx.URL(host)
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(f"{host} is not a URL ({exc})", param_hint="--host") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise typer.BadParameter(f"{host}: expected http://HOST:PORT or https://HOST", param_hint="--host")
    return host.rstrip("/")


def check_repository(repository: Path | None) -> None:
    if repository is not None and not repository.is_dir():
        raise typer.BadParameter(f"{repository} is not a folder", param_hint="--repository")


def run_directory(output_dir: Path, scenario: Scenario) -> Path:
    """A new folder for this run, named by its start; runs started in the same second (two terminals, a
    script) get ``-2``, ``-3``, ... rather than one failing on the other's folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = output_dir / f"loadtest-{scenario.value}-{stamp}"
    output_dir.mkdir(parents=True, exist_ok=True)
    for attempt in itertools.count(1):
        path = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


@contextmanager
def target(host: str | None, repository: Path | None, run_dir: Path, ready_timeout_s: float) -> Iterator[str]:
    from poolserve.loadtests.target import local_poolserve, wait_ready

    if host is None:
        with local_poolserve(repository, run_dir / "server.log", ready_timeout_s) as url:
            typer.echo(f"started a local poolserve at {url} (log: {run_dir / 'server.log'})")
            yield url
        return
    wait_ready(host, ready_timeout_s)
    yield host


def run_seconds(duration: str | None, step: StepLoad | None, users: int, spawn_rate: float) -> float:
    """``--duration``; unset, 30 s, or for step load enough for every step, each with its ramp."""
    if duration is not None:
        return _seconds(duration, "--duration")
    if step is None:
        return _seconds(DEFAULT_DURATION, "--duration")
    return math.ceil(users / step.users) * (step.seconds + step.users / spawn_rate) + 1


def select_models(available: TargetModels, wanted: list[str] | None) -> TargetModels:
    if not wanted:
        return available
    ready = available.classification + available.region_features
    unknown = [name for name in wanted if name not in ready]
    if unknown:
        names, listed = ", ".join(unknown), ", ".join(ready) or "none"
        raise ValueError(f"--model {names}: the target has no ready model of that name (ready: {listed})")
    return TargetModels(
        classification=[m for m in available.classification if m in wanted],
        region_features=[m for m in available.region_features if m in wanted],
    )


def engine_budget(config: RunConfig) -> float:
    return config.duration_s + ENGINE_SLACK_S


def run_engine(config: RunConfig, run_dir: Path) -> None:
    config_path = run_dir / "config.json"
    config_path.write_text(config.model_dump_json(indent=1, exclude={"api_key"}))
    env = dict(os.environ)
    if config.api_key:
        env[API_KEY_ENV] = config.api_key
    command = [sys.executable, "-m", "poolserve.loadtests.engine", str(config_path)]
    # A hard bound on top of the engine's own clock: a wedged generator must not run on.
    subprocess.run(command, env=env, check=True, timeout=engine_budget(config))  # noqa: S603  (our own argv)


def run(
    scenario: Annotated[Scenario, typer.Option(help="what the users send")] = Scenario.MIXED,
    users: Annotated[int, typer.Option(min=1, help="concurrent users (step load: the ceiling)")] = 8,
    spawn_rate: Annotated[float, typer.Option(min=0.1, help="users started per second")] = 4.0,
    duration: Annotated[
        str | None, typer.Option(help="run time, e.g. 30s, 2m [default: 30s; step load: every step]")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="base URL to test [default: start a local poolserve on 127.0.0.1]")
    ] = None,
    repository: Annotated[Path | None, typer.Option(help="model repository for the local poolserve")] = None,
    step_users: Annotated[
        int | None, typer.Option(min=1, help="step load: add this many users per step until an SLO breaks")
    ] = None,
    step_duration: Annotated[str, typer.Option(help="step load: measured time per step")] = "15s",
    slo_error_rate: Annotated[float | None, typer.Option(min=0, max=1, help="max failed fraction")] = 0.01,
    slo_p95_ms: Annotated[float | None, typer.Option(help="max p95 latency, ms")] = None,
    slo_p99_ms: Annotated[float | None, typer.Option(help="max p99 latency, ms")] = None,
    slo_min_rps: Annotated[float | None, typer.Option(help="min successful requests per second")] = None,
    ready_timeout: Annotated[str, typer.Option(help="how long to wait for /health/ready")] = "60s",
    think_ms: Annotated[float, typer.Option(min=0, help="mean pause between a user's requests")] = 0.0,
    seed: Annotated[int, typer.Option(help="corpus and request-mix seed")] = 0,
    model: Annotated[list[str] | None, typer.Option(help="only these models (repeatable)")] = None,
    digits: Annotated[
        Path | None, typer.Option(help=f"held-out digit PNGs [default: {DEFAULT_DIGITS}, if there]")
    ] = None,
    canvases: Annotated[
        Path | None, typer.Option(help=f"canvases with boxes [default: {DEFAULT_CANVASES}, if there]")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="POOLSERVE_API_KEY", help="X-API-Key to send")] = None,
    output_dir: Annotated[
        Path, typer.Option(help="runs are written to <dir>/loadtest-<scenario>-<UTC>")
    ] = Path("runs"),
) -> None:
    """Run one headless load test, write its report, exit non-zero when an objective is missed."""
    import httpx

    from poolserve.loadtests.target import TargetUnavailableError, ready_models
    from poolserve.loadtests.workload import scenario_weights

    step = (
        StepLoad(users=step_users, seconds=_seconds(step_duration, "--step-duration")) if step_users else None
    )
    duration_s = run_seconds(duration, step, users, spawn_rate)
    slo = Slo(max_error_rate=slo_error_rate, p95_ms=slo_p95_ms, p99_ms=slo_p99_ms, min_rps=slo_min_rps)
    ready_timeout_s = _seconds(ready_timeout, "--ready-timeout")
    host = check_host(host)
    check_repository(repository)
    digits_dir = corpus_dir(digits, DEFAULT_DIGITS, "--digits")
    canvases_dir = corpus_dir(canvases, DEFAULT_CANVASES, "--canvases")
    run_dir = run_directory(output_dir, scenario)
    try:
        with target(host, repository, run_dir, ready_timeout_s) as base_url:
            models = select_models(ready_models(base_url, api_key), model)
            scenario_weights(scenario, models)  # refuse early when the target cannot serve the scenario
            config = RunConfig(
                scenario=scenario,
                host=base_url,
                users=users,
                spawn_rate=spawn_rate,
                duration_s=duration_s,
                step=step,
                slo=slo,
                seed=seed,
                think_ms=think_ms,
                api_key=api_key,
                models=models,
                digits_dir=digits_dir,
                canvases_dir=canvases_dir,
                out_dir=run_dir.resolve(),
            )
            typer.echo(
                f"{scenario.value}: models {models.classification + models.region_features}; run {run_dir}"
            )
            run_engine(config, run_dir)
    except (
        TargetUnavailableError,
        ValueError,
        httpx.HTTPError,
        subprocess.CalledProcessError,
        subprocess.TimeoutExpired,
    ) as exc:
        typer.echo(f"load test could not run: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    finish(config, run_dir)


def finish(config: RunConfig, run_dir: Path) -> None:
    from poolserve.loadtests import report
    from poolserve.loadtests.results import RunResult
    from poolserve.loadtests.verdict import judge

    result = RunResult.model_validate_json((run_dir / "results.json").read_text())
    verdict = judge(config, result)
    path = report.write(config, result, verdict)
    typer.echo(report.console_summary(result, verdict))
    typer.echo(f"report: {path}")
    if not verdict.passed:
        raise typer.Exit(EXIT_MISSED)


app.command("run")(run)


def run_as(prog_name: str, args: list[str]) -> None:
    """Run the ``run`` command under another name: ``poolserve loadtest`` hands its arguments here."""
    single = typer.Typer(add_completion=False)
    single.command()(run)  # one command, no callback: typer makes it the whole program
    single(args, prog_name=prog_name)
