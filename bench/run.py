"""One benchmark run: for each model, raw onnxruntime, then every server in turn (poolserve first and
again last, to show drift), each at every concurrency; results to JSON, then the report and plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import loadgen, payloads, processes
from bench.suite import BARE, NAIVE, PEER_SPECS, POOLSERVE, POOLSERVE_NO_WINDOW, ROOT, VENVS, TargetSpec

SERVER_CORES = "0"
CLIENT_CORES = "1"
NICE = "-10"  # this machine is shared with other work; both server and client run ahead of it
# (the session's autogroup nice, see processes.prioritize; plain nice for the threads inside it)
DIGITS = "lenet5-mnist"
REGION_MODELS = ("digits-roialign", "digits-roipool")
BENCH_REPOSITORY = ROOT / ".bench-repository"
SCRATCH = ROOT / ".bench-work"
FOREIGN_LIMIT = 0.15  # share of the server core taken by other processes above which a run is repeated


@dataclass(frozen=True)
class Plan:
    concurrencies: tuple[int, ...]
    duration_s: float
    warmup_s: float
    raw_seconds_per_batch: float
    peers: tuple[str, ...]
    models: tuple[str, ...]
    max_retries: int = 2  # extra attempts for a run disturbed by other processes (FOREIGN_LIMIT)
    repository: Path = ROOT / "model_repository"  # the shipped models: the digits and region models


FULL = Plan((1, 8, 32, 64), 6.0, 2.0, 1.0, tuple(PEER_SPECS), ("digits", "resnet"), max_retries=1)
QUICK = Plan((1, 32), 3.0, 1.0, 0.3, tuple(PEER_SPECS), ("digits", "resnet"), max_retries=1)


@dataclass
class Results:
    meta: dict[str, Any]
    raw_ort: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)


def _pinned(argv: list[str], cores: str) -> list[str]:
    return ["taskset", "-c", cores, "nice", "-n", NICE, *argv]


def _shown(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def _meta(plan: Plan) -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit.strip(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "server_cores": SERVER_CORES,
        "client_cores": CLIENT_CORES,
        "nice": int(NICE),
        "load_generator": "wrk -t1 (closed loop, one connection per concurrent client)",
        # Relative to the checkout when inside it: results files must not carry one machine's paths.
        "plan": {**plan.__dict__, "repository": _shown(plan.repository)},
        "loadavg_start": os.getloadavg(),
    }


def _entry(plan: Plan, model: str) -> Path:
    if model == "digits":
        return plan.repository / DIGITS / "1"
    from bench.resnet import NAME, write_entry

    entry = BENCH_REPOSITORY / NAME / "1"
    return entry if (entry / "manifest.json").exists() else write_entry(BENCH_REPOSITORY)


def _classify_payload(model: str) -> loadgen.Payload:
    if model == "digits":
        return payloads.classify_payload(payloads.digit_png(), "image/png")
    return payloads.classify_payload(payloads.photo_jpeg(), "image/jpeg")


def _raw_ort(entry: Path, seconds: float, *extra: str) -> dict[str, Any]:
    argv = _pinned(
        [str(ROOT / ".venv/bin/python"), "-m", "bench.raw_ort", str(entry), str(seconds), *extra],
        SERVER_CORES,
    )
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    processes.prioritize(process.pid)
    out, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"raw onnxruntime run failed ({process.returncode})")
    return dict(json.loads(out))


def _bracket_raw_reference(plan: Plan, entry: Path, raw: dict[str, Any]) -> None:
    """The best batch measured again after every server ran; the reference becomes the mean of the start's
    and the end's figures, as poolserve's is the mean of its first and last pass, so that a host that
    slows down (or speeds up) during the block moves both sides of the ratio alike."""
    end = _raw_ort(entry, plan.raw_seconds_per_batch, "--batch", str(raw["best_batch_size"]))
    raw["start_images_per_s"], raw["end_images_per_s"] = raw["best_images_per_s"], end["images_per_s"]
    raw["best_images_per_s"] = (raw["start_images_per_s"] + raw["end_images_per_s"]) / 2
    print(
        f"  raw onnxruntime again: {end['images_per_s']:.1f} img/s at batch {raw['best_batch_size']}",
        flush=True,
    )


def _probe(url: str, payload: loadgen.Payload) -> tuple[str, dict[str, object]]:
    return "POST", {"content": payload.body, "headers": {"content-type": payload.content_type}}


def _drain(url: str, payload: loadgen.Payload) -> None:
    """wrk stops sending at its deadline, not when the server is idle: requests still queued would land
    in the next run's first latencies. One request waits behind all of them (every target is FIFO)."""
    httpx.post(url, content=payload.body, headers={"content-type": payload.content_type}, timeout=300)
    time.sleep(0.3)


def _measure(
    server: processes.Server, url: str, payload: loadgen.Payload, concurrency: int, seconds: float
) -> dict[str, Any]:
    _drain(url, payload)
    for pid in server.tree():  # BentoML's worker and Ray's actors start sessions (autogroups) of their own
        processes.prioritize(pid)
    cpu_before = processes.cpu_seconds(server.tree())
    core_before = processes.core_busy_seconds(int(SERVER_CORES))
    result = loadgen.run_wrk(url, payload, concurrency, seconds, CLIENT_CORES)
    cpu = processes.cpu_seconds(server.tree()) - cpu_before
    core = processes.core_busy_seconds(int(SERVER_CORES)) - core_before
    return {
        **result.as_dict(),
        "server_cpu_s": cpu,
        # CPU that other processes of this shared machine took on the server's core meanwhile
        "foreign_cpu_on_server_core_s": max(0.0, core - cpu),
        "server_rss_mb": processes.rss_bytes(server.tree()) / 2**20,
        "loadavg": os.getloadavg()[0],
    }


def _load_series(
    plan: Plan, server: processes.Server, url: str, payload: loadgen.Payload, labels: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    loadgen.run_wrk(url, payload, max(plan.concurrencies), plan.warmup_s, CLIENT_CORES)
    for concurrency in plan.concurrencies:
        attempts = [_measure(server, url, payload, concurrency, plan.duration_s)]
        # This machine is shared: a run during which other processes took much of the server core is
        # measured again (the same rule for every target), and the least disturbed attempt is kept.
        while attempts[-1]["foreign_cpu_on_server_core_s"] > FOREIGN_LIMIT * plan.duration_s and (
            len(attempts) <= plan.max_retries
        ):
            attempts.append(_measure(server, url, payload, concurrency, plan.duration_s))
        row = min(attempts, key=lambda a: a["foreign_cpu_on_server_core_s"])
        rows.append({**labels, **row, "attempts": len(attempts)})
        result = loadgen.LoadResult(**{k: row[k] for k in loadgen.LoadResult.__dataclass_fields__})
        print(
            f"  {labels['target']:>14} {labels['endpoint']:>8} c={concurrency:<3} "
            f"{result.images_per_s:8.1f} img/s  p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  "
            f"errors {result.errors}",
            flush=True,
        )
    return rows


def _features(plan: Plan, server: processes.Server, base_url: str, results: Results, pass_no: int) -> None:
    payload, boxes = payloads.canvas_payload()
    for name in REGION_MODELS:
        url = f"{base_url}/v1/models/{name}/features"
        response = httpx.post(url, content=payload.body, headers={"content-type": payload.content_type})
        if response.status_code != 200:
            results.failures.append({"target": "poolserve", "model": name, "error": response.text[:300]})
            continue
        labels = {
            "model": name,
            "target": "poolserve",
            "endpoint": "features",
            "pass": pass_no,
            "boxes": boxes,
        }
        results.runs.extend(_load_series(plan, server, url, payload, labels))


def _one_target(
    plan: Plan, spec: TargetSpec, model: str, entry: Path, results: Results, pass_no: int
) -> None:
    name = json.loads((entry / "manifest.json").read_text())["name"]
    launch = spec.launch(entry, SCRATCH / spec.name, name)
    (SCRATCH / spec.name).mkdir(parents=True, exist_ok=True)
    payload = _classify_payload(model)
    server = processes.start(
        f"{spec.name}-{model}-{pass_no}", _pinned(launch.argv, SERVER_CORES), launch.env, SCRATCH, ROOT
    )
    try:
        processes.wait_ready(server, launch.url, _probe(launch.url, payload), launch.ready_timeout_s)
        answer = httpx.post(launch.url, content=payload.body, headers={"content-type": payload.content_type})
        rest_mb = processes.rss_bytes(server.tree()) / 2**20
        if spec is POOLSERVE:
            results.rss_mb[f"{model}-pass{pass_no}-at-rest"] = rest_mb
        labels = {
            "model": name,
            "target": spec.name,
            "kind": spec.kind,
            "endpoint": "classify",
            "pass": pass_no,
            "rss_at_rest_mb": rest_mb,
            "answer": answer.text[:200],
        }
        results.runs.extend(_load_series(plan, server, launch.url, payload, labels))
        if spec is POOLSERVE and model == "digits" and pass_no == 2:
            _features(plan, server, launch.url.split("/v1/")[0], results, pass_no)
        if spec is POOLSERVE:
            results.rss_mb[f"{model}-pass{pass_no}-after"] = processes.rss_bytes(server.tree()) / 2**20
    except (RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError) as error:
        print(f"  {spec.name}: FAILED {error}", flush=True)
        results.failures.append({"target": spec.name, "model": model, "error": str(error)[:500]})
    finally:
        server.stop()


def run(plan: Plan, out_dir: Path) -> Path:
    os.sched_setaffinity(0, {int(c) for c in CLIENT_CORES.split(",")})  # the harness stays off core 0
    SCRATCH.mkdir(exist_ok=True)
    results = Results(meta=_meta(plan))
    started = time.monotonic()
    for model in plan.models:
        entry = _entry(plan, model)
        print(f"== {model}: raw onnxruntime", flush=True)
        results.raw_ort[model] = _raw_ort(entry, plan.raw_seconds_per_batch)
        print(
            f"  best {results.raw_ort[model]['best_images_per_s']:.1f} img/s at batch "
            f"{results.raw_ort[model]['best_batch_size']}",
            flush=True,
        )
        order: list[tuple[TargetSpec, int]] = [(POOLSERVE, 1), (BARE, 1), (NAIVE, 1)]
        order += [(PEER_SPECS[p], 1) for p in plan.peers if (VENVS / p).is_dir()]
        order += [(POOLSERVE, 2), (POOLSERVE_NO_WINDOW, 1)]
        for spec, pass_no in order:
            print(f"== {model}: {spec.name} (pass {pass_no})", flush=True)
            _one_target(plan, spec, model, entry, results, pass_no)
        _bracket_raw_reference(plan, entry, results.raw_ort[model])
    results.meta["wall_s"] = time.monotonic() - started
    results.meta["loadavg_end"] = os.getloadavg()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    path.write_text(json.dumps(results.__dict__, indent=2) + "\n")
    return path
