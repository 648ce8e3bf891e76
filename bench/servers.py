"""granian against uvicorn under the same poolserve app, and under a no-op ASGI app (each server's ceiling).

    python -m bench.servers [--quick] [--core-sets 0:1 0,1:1]

A core set is ``SERVER_CORES:CLIENT_CORES``; the default is one server core and two (the first two of
this process's cores), wrk on the last core. On a 2-core machine the 2-core case shares a core with wrk,
and the results say so. With N server cores each server runs N worker processes: ``poolserve serve
--workers N`` (uvicorn with httptools and uvloop, under poolserve's supervisor, as deployed) and
``granian --workers N`` (its own Rust runtime with one thread per worker, uvloop). Every server gets one
onnxruntime thread per worker and the same request: one held-out digit as a raw PNG body. Each
(server, app) pair runs twice, in one order then the reverse. Writes ``bench/results/servers.json`` and
``servers.md`` (or under ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from importlib import metadata as package_metadata
from pathlib import Path
from statistics import mean
from typing import Any

from bench import loadgen, payloads
from bench.pinned import metadata, parse_cores, serve_and_measure, short_commit, write_results
from bench.suite import ROOT, free_port

RESULTS = ROOT / "bench" / "results"
MODEL = "lenet5-mnist"
SERVERS = ("uvicorn", "granian")
APPS = ("poolserve", "noop")
FULL = {"concurrencies": (1, 8, 32, 64), "duration_s": 6.0, "warmup_s": 2.0}
QUICK = {"concurrencies": (1, 32), "duration_s": 3.0, "warmup_s": 1.0}


def default_core_sets() -> list[str]:
    cores = sorted(os.sched_getaffinity(0))
    client = cores[-1]
    return [f"{cores[0]}:{client}", f"{cores[0]},{cores[1]}:{client}"] if len(cores) > 1 else []


def server_argv(server: str, app: str, port: int, workers: int) -> list[str]:
    if server == "uvicorn" and app == "poolserve":
        return [sys.executable, "-m", "poolserve", "serve", "--workers", str(workers)]
    if server == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", "bench.targets.noop:app", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", str(workers), "--http", "httptools", "--loop", "uvloop"),
            *("--no-access-log", "--log-level", "warning", "--no-server-header"),
        ]
    target = "poolserve.service.app:create_app" if app == "poolserve" else "bench.targets.noop:app"
    return [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers), "--runtime-threads", "1", "--loop", "uvloop", "--http", "1", "--no-ws"),
        *("--log-level", "warning", "--no-access-log"),
        "--factory" if app == "poolserve" else "--no-factory",
        target,
    ]


def server_env(port: int) -> dict[str, str]:
    """What every server of these comparisons runs with: the shipped repository, one onnxruntime thread."""
    return {
        "POOLSERVE_PORT": str(port),
        "POOLSERVE_REPOSITORY": str(ROOT / "model_repository"),
        "POOLSERVE_LOG_LEVEL": "warning",
        "POOLSERVE_INTRA_OP_THREADS": "1",
    }


def one_server(
    server: str, app: str, core_set: str, plan: dict[str, Any], payload: loadgen.Payload, scratch: Path
) -> list[dict[str, Any]]:
    server_cores, client_cores = core_set.split(":")
    workers = len(parse_cores(server_cores))
    port = free_port()
    env = server_env(port)
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL}/classify"
    name = f"{server}-{app}-{workers}core"
    argv = server_argv(server, app, port, workers)
    cores = (server_cores, client_cores)
    rows = serve_and_measure(name, argv, env, url, payload, plan, cores, scratch, workers)
    return [{"core_set": core_set, "server": server, "app": app, "workers": workers, **row} for row in rows]


def run(plan: dict[str, Any], core_sets: list[str], out: Path) -> Path:
    scratch = ROOT / ".bench-work" / "servers"
    scratch.mkdir(parents=True, exist_ok=True)
    clients = {c for core_set in core_sets for c in parse_cores(core_set.split(":")[1])}
    os.sched_setaffinity(0, clients)  # the harness stays on the client cores
    payload = loadgen.Payload("image/png", payloads.digit_png())
    server_cores, client_cores = core_sets[0].split(":")
    results: dict[str, Any] = {
        "meta": {
            **metadata(server_cores, client_cores, {**plan, "core_sets": core_sets}),
            "versions": {
                p: package_metadata.version(p) for p in ("uvicorn", "granian", "uvloop", "httptools")
            },
            "shared_cores": {
                cs: sorted(set(parse_cores(cs.split(":")[0])) & set(parse_cores(cs.split(":")[1])))
                for cs in core_sets
            },
        },
        "runs": [],
    }
    started = time.monotonic()
    pairs = [(server, app) for app in APPS for server in SERVERS]
    for core_set in core_sets:
        for pass_no, order in ((1, pairs), (2, pairs[::-1])):
            for server, app in order:
                print(f"== cores {core_set}: {server} / {app}, pass {pass_no}", flush=True)
                rows = one_server(server, app, core_set, plan, payload, scratch)
                results["runs"] += [{**row, "pass": pass_no} for row in rows]
    return write_results(results, started, out / "servers.json")


def means(results: dict[str, Any]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """(core set, server, app, concurrency) -> mean throughput and p99 over both passes, and each pass."""
    grouped: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in results["runs"]:
        grouped[(row["core_set"], row["server"], row["app"], row["concurrency"])].append(row)
    return {
        key: {
            "rps": mean(r["throughput_rps"] for r in rows),
            "p99_ms": mean(r["p99_ms"] for r in rows),
            "passes": [round(r["throughput_rps"]) for r in sorted(rows, key=lambda r: r["pass"])],
            "errors": sum(r["errors"] for r in rows),
        }
        for key, rows in grouped.items()
    }


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    table = means(results)
    lines = [
        "# granian against uvicorn (`python -m bench.servers`)",
        "",
        f"Commit `{short_commit(meta['git_commit'])}`, {meta['started']}, {meta['cpu']} "
        f"({meta['cores']} cores), "
        f"{meta['wall_s'] / 60:.1f} minutes; load average {meta['loadavg_start'][0]:.2f} at the start, "
        f"{meta['loadavg_end'][0]:.2f} at the end. Versions: {meta['versions']}. Plan: {meta['plan']}. "
        "One held-out digit per request (raw PNG body) to `lenet5-mnist`; the no-op app reads the body "
        "and answers a fixed JSON. Each cell: requests/s (mean of two passes, each pass in brackets) "
        "and p99 in ms; `granian / uvicorn` is the ratio of the means.",
        "",
    ]
    for core_set in meta["plan"]["core_sets"]:
        server_cores, client_cores = core_set.split(":")
        shared = meta["shared_cores"][core_set]
        lines += [
            f"## Server on core(s) {server_cores}, wrk on {client_cores}"
            + (f" (sharing core(s) {shared}: wrk takes CPU from the server)" if shared else ""),
            "",
            "| app | c | uvicorn req/s | p99 | granian req/s | p99 | granian / uvicorn |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for app in APPS:
            for concurrency in meta["plan"]["concurrencies"]:
                u = table.get((core_set, "uvicorn", app, concurrency))
                g = table.get((core_set, "granian", app, concurrency))
                if u is None or g is None:
                    continue
                errors = u["errors"] + g["errors"]
                lines.append(
                    f"| {app} | {concurrency} | {u['rps']:.0f} {u['passes']} | {u['p99_ms']:.1f} | "
                    f"{g['rps']:.0f} {g['passes']} | {g['p99_ms']:.1f} | {g['rps'] / u['rps']:.2f}"
                    + (f" (**{errors} errors**)" if errors else "")
                    + " |"
                )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="c in (1, 32), 3 s runs")
    parser.add_argument("--core-sets", nargs="+", default=default_core_sets(), help="SERVER:CLIENT cores")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, help="only rewrite the report from this servers.json")
    args = parser.parse_args()
    path = args.report or run(QUICK if args.quick else FULL, args.core_sets, args.out)
    md = path.with_suffix(".md")
    md.write_text(markdown(json.loads(path.read_text())))
    print(path, md, sep="\n")


if __name__ == "__main__":
    main()
