"""The inference routes' two ways in, on the same requests: the ``InferenceEndpoint`` that serves them
(``lean``) against their FastAPI declaration, dependencies and ``Query`` solved by FastAPI (``fastapi``,
``bench/targets/poolserve_variants.py:fastapi_as_designed``). Both call the same handlers.

    python -m bench.endpoints [--quick] [--no-http]

- in-process: both apps in one process, driven with ASGI messages (``bench.inprocess``), rounds
  alternating: µs of CPU and wall per digit classification at concurrency 1 and 32;
- over HTTP: each design under uvicorn pinned to core 0, wrk pinned to core 1 (``bench.run``'s pinning
  and measurement), rounds alternating: req/s, p50, p99 and the server's CPU per request.

The figure for each design and concurrency is its best round. Writes ``endpoints.json`` and
``endpoints.md`` (default ``bench/results/``; ``--quick``: ``bench/results/quick/``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import loadgen, payloads, processes, suite
from bench import run as bench_run
from bench.inprocess import asgi_scope, drive, model_ready
from bench.provenance import run_metadata, save_results

MODEL = "lenet5-mnist"
CONCURRENCIES = (1, 32)
DESIGNS = {"lean": "stock", "fastapi": "fastapi_as_designed"}  # factories in bench.targets.poolserve_variants


async def in_process(requests: int, rounds: int) -> list[dict[str, Any]]:
    from bench.targets import poolserve_variants

    payload = payloads.classify_payload(payloads.digit_png(), "image/png")
    scope = asgi_scope(f"/v1/models/{MODEL}/classify", payload)
    apps = {design: getattr(poolserve_variants, factory)() for design, factory in DESIGNS.items()}
    rows: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as running:
        for app in apps.values():
            await running.enter_async_context(app.router.lifespan_context(app))
            await model_ready(app, MODEL)
            await drive(app, scope, payload.body, 200, 32)  # warm-up
        for round_no in range(rounds):
            for concurrency in CONCURRENCIES:
                for design, app in apps.items():
                    wall, cpu = time.perf_counter(), time.process_time()
                    await drive(app, scope, payload.body, requests, concurrency)
                    rows.append(
                        {
                            "design": design,
                            "round": round_no,
                            "concurrency": concurrency,
                            "wall_us": 1e6 * (time.perf_counter() - wall) / requests,
                            "cpu_us": 1e6 * (time.process_time() - cpu) / requests,
                        }
                    )
    return rows


def over_http(seconds: float, rounds: int) -> list[dict[str, Any]]:
    entry = suite.ROOT / "model_repository" / MODEL / "1"
    payload = payloads.classify_payload(payloads.digit_png(), "image/png")
    rows: list[dict[str, Any]] = []
    bench_run.SCRATCH.mkdir(exist_ok=True)
    for round_no in range(rounds):
        for design, factory in DESIGNS.items():
            launch = suite._poolserve(entry, bench_run.SCRATCH, MODEL)
            app = f"bench.targets.poolserve_variants:{factory}"
            argv = [app if a == "poolserve.service.app:create_app" else a for a in launch.argv]
            argv[0] = sys.executable  # the interpreter running this script, whichever environment it is
            server = processes.start(
                f"endpoints-{design}",
                bench_run._pinned(argv, bench_run.SERVER_CORES),
                launch.env,
                bench_run.SCRATCH,
                suite.ROOT,
            )
            try:
                processes.wait_ready(server, launch.url, bench_run._probe(launch.url, payload), 60)
                loadgen.run_wrk(launch.url, payload, max(CONCURRENCIES), 1, bench_run.CLIENT_CORES)
                for concurrency in CONCURRENCIES:
                    r = bench_run._measure(server, launch.url, payload, concurrency, seconds)
                    rows.append(
                        {
                            "design": design,
                            "round": round_no,
                            "concurrency": concurrency,
                            "req_per_s": r["images_per_s"],
                            "p50_ms": r["p50_ms"],
                            "p99_ms": r["p99_ms"],
                            "server_cpu_us": 1e6 * r["server_cpu_s"] / max(r["requests"], 1),
                            "foreign_share": r["foreign_cpu_on_server_core_s"] / r["duration_s"],
                            "errors": r["errors"],
                        }
                    )
            finally:
                server.stop()
    return rows


def best(rows: list[dict[str, Any]], design: str, concurrency: int, key: str, lowest: bool) -> dict[str, Any]:
    mine = [r for r in rows if r["design"] == design and r["concurrency"] == concurrency]
    return (min if lowest else max)(mine, key=lambda r: r[key])


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    command = "python -m bench.endpoints" + (" --quick" if results["quick"] else "")
    lines = [
        f"# Inference endpoint designs: {MODEL}, one digit PNG per request",
        "",
        f"`{command}` at commit `{meta['git_commit']}`,"
        f" {meta['cpu']}, {meta['cores']} cores, load average {meta['load_before']:.2f} before and"
        f" {meta['load_after']:.2f} after. `lean`: the `InferenceEndpoint` the service uses; `fastapi`: the"
        " same handlers behind their FastAPI declarations (dependencies, `Query`). Best of"
        f" {results['rounds']} alternating rounds.",
        "",
        f"In-process ({results['requests_per_round']} requests a round, no HTTP):",
        "",
        "| concurrency | lean µs CPU/request | fastapi µs CPU/request | fastapi − lean µs | lean µs wall"
        " | fastapi µs wall |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = results["in_process"]
    for c in CONCURRENCIES:
        lean, fast = best(rows, "lean", c, "cpu_us", True), best(rows, "fastapi", c, "cpu_us", True)
        lines.append(
            f"| {c} | {lean['cpu_us']:.0f} | {fast['cpu_us']:.0f} | {fast['cpu_us'] - lean['cpu_us']:.0f} |"
            f" {best(rows, 'lean', c, 'wall_us', True)['wall_us']:.0f} |"
            f" {best(rows, 'fastapi', c, 'wall_us', True)['wall_us']:.0f} |"
        )
    if results["http"]:
        lines += [
            "",
            f"Over HTTP (uvicorn on core 0, wrk on core 1, {results['seconds']:g} s a run):",
            "",
            "| concurrency | design | req/s | p50 ms | p99 ms | server µs CPU/request | others on core 0 |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in CONCURRENCIES:
            for design in DESIGNS:
                r = best(results["http"], design, c, "req_per_s", False)
                lines.append(
                    f"| {c} | {design} | {r['req_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
                    f" {r['server_cpu_us']:.0f} | {100 * r['foreign_share']:.0f} % |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoints")
    parser.add_argument(
        "--quick", action="store_true", help="300 requests / 2 s runs, 2 rounds (else 2000 / 5 s, 3)"
    )
    parser.add_argument("--no-http", action="store_true", help="in-process only (no uvicorn, no wrk)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("POOLSERVE_REPOSITORY", str(suite.ROOT / "model_repository"))
    os.environ.setdefault("POOLSERVE_INTRA_OP_THREADS", "1")
    os.environ.setdefault("POOLSERVE_INTER_OP_THREADS", "1")
    os.environ.setdefault("POOLSERVE_LOG_LEVEL", "warning")
    requests, seconds, rounds = (300, 2.0, 2) if args.quick else (2000, 5.0, 3)
    meta = run_metadata() | {"load_before": os.getloadavg()[0]}
    in_process_rows = asyncio.run(in_process(requests, rounds))
    http_rows = [] if args.no_http else over_http(seconds, rounds)
    meta["load_after"] = os.getloadavg()[0]
    results = {
        "meta": meta,
        "quick": args.quick,
        "rounds": rounds,
        "requests_per_round": requests,
        "seconds": seconds,
        "in_process": in_process_rows,
        "http": http_rows,
    }
    save_results("endpoints", results, markdown(results), args.out, args.quick)


if __name__ == "__main__":
    main()
