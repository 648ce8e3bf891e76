"""Throughput and p99 against the number of server processes: ``poolserve serve --workers N``.

    python -m bench.workers [--quick] [--server-cores 0-15] [--client-cores 15] [--workers 1 2 4 8 16]

For each model (the digit classifier and the ResNet-size one) and each worker count, a supervised
``poolserve serve --workers N`` is pinned to the server cores (its workers split them: each gets
cores // N onnxruntime threads) and wrk, pinned to the client cores, drives it at each concurrency.
Every worker count runs twice, in ascending then descending order, so drift on a shared machine falls
on all counts alike; the report gives the mean of both passes. Writes ``bench/results/workers.json``,
``workers.md`` and ``workers.png`` (or under ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

from bench import loadgen, payloads
from bench.pinned import (
    default_core_sets,
    metadata,
    parse_cores,
    plot_lines,
    serve_and_measure,
    short_commit,
    write_results,
)
from bench.suite import ROOT, free_port

RESULTS = ROOT / "bench" / "results"
BENCH_REPOSITORY = ROOT / ".bench-repository"
MODELS = ("lenet5-mnist", "resnet18-gap")
FULL = {"concurrencies": (1, 8, 32, 64), "duration_s": 6.0, "warmup_s": 2.0}
QUICK = {"concurrencies": (8, 32), "duration_s": 3.0, "warmup_s": 1.0}
DECODE_SLOTS = 64  # at least the highest concurrency: no request is shed


def worker_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to the number of server cores, which is always included."""
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == cores else [*counts, cores]


def model_setup(model: str) -> tuple[Path, loadgen.Payload]:
    """The repository that holds ``model`` and its request: a digit PNG, or a 224x224 photo JPEG."""
    if model == "lenet5-mnist":
        return ROOT / "model_repository", payloads.classify_payload(payloads.digit_png(), "image/png")
    from bench.resnet import NAME, write_entry

    if not (BENCH_REPOSITORY / NAME / "1" / "manifest.json").exists():
        write_entry(BENCH_REPOSITORY)  # needs torch: the model is exported on the spot
    return BENCH_REPOSITORY, payloads.classify_payload(payloads.photo_jpeg(), "image/jpeg")


def one_server(
    model: str, workers: int, plan: dict[str, Any], cores: tuple[str, str], scratch: Path
) -> list[dict[str, Any]]:
    repository, payload = model_setup(model)
    port = free_port()
    env = {
        "POOLSERVE_PORT": str(port),
        "POOLSERVE_REPOSITORY": str(repository),
        "POOLSERVE_LOG_LEVEL": "warning",
        # The decode budget is per process: left at its default, N workers would shed N times fewer
        # photo requests with 503 than one, and the curve would measure that instead of throughput.
        "POOLSERVE_MAX_CONCURRENT_DECODES": str(DECODE_SLOTS),
    }
    argv = [sys.executable, "-m", "poolserve", "serve", "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}/v1/models/{model}/classify"
    rows = serve_and_measure(f"{model}-w{workers}", argv, env, url, payload, plan, cores, scratch, workers)
    return [{"model": model, "workers": workers, **row} for row in rows]


def run(
    plan: dict[str, Any], models: list[str], counts: list[int], cores: tuple[str, str], out: Path
) -> Path:
    scratch = ROOT / ".bench-work" / "workers"
    scratch.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, set(parse_cores(cores[1])))  # the harness stays on the client cores
    results: dict[str, Any] = {
        "meta": metadata(
            *cores, {**plan, "models": models, "workers": counts, "max_concurrent_decodes": DECODE_SLOTS}
        ),
        "runs": [],
    }
    started = time.monotonic()
    for model in models:
        for pass_no, order in ((1, counts), (2, counts[::-1])):
            for workers in order:
                print(f"== {model}: {workers} worker(s), pass {pass_no}", flush=True)
                rows = one_server(model, workers, plan, cores, scratch)
                results["runs"] += [{**row, "pass": pass_no} for row in rows]
    return write_results(results, started, out / "workers.json")


def curves(results: dict[str, Any]) -> dict[str, dict[int, dict[int, dict[str, Any]]]]:
    """model -> concurrency -> workers -> the mean of both passes."""
    grouped: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for run_ in results["runs"]:
        grouped[(run_["model"], run_["concurrency"], run_["workers"])].append(run_)
    table: dict[str, dict[int, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for (model, concurrency, workers), rows in sorted(grouped.items()):
        table[model][concurrency][workers] = {
            "rps": mean(r["throughput_rps"] for r in rows),
            "passes": [round(r["throughput_rps"]) for r in sorted(rows, key=lambda r: r["pass"])],
            "p99_ms": mean(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "busiest": max(r["busiest_process_share"] for r in rows),
            "foreign_share": max(r["foreign_cpu_s"] / r["duration_s"] for r in rows),
        }
    return table


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    shared = meta["client_shares_server_cores"]
    lines = [
        "# Throughput against server processes (`poolserve serve --workers N`)",
        "",
        f"`python -m bench.workers` at commit `{short_commit(meta['git_commit'])}`, {meta['started']}, on "
        f"{meta['cpu']} ({meta['cores']} cores), {meta['wall_s'] / 60:.1f} minutes. Server on cores "
        f"{meta['server_cores']}, wrk on {meta['client_cores']}"
        + (f" (sharing core(s) {shared} with the server)" if shared else "")
        + f"; load average {meta['loadavg_start'][0]:.2f} at the start, {meta['loadavg_end'][0]:.2f} at the "
        f"end. Plan: {meta['plan']}. Each cell: requests/s (one image each), p99 in ms, mean of two passes; "
        "each pass in brackets; `x` is the ratio to one worker at the same concurrency; `busiest` is the "
        "busiest server process's share of the server's CPU (1/N: evenly spread).",
        "",
    ]
    for model, by_c in curves(results).items():
        counts = sorted({w for row in by_c.values() for w in row})
        lines += [f"## {model}", "", "| concurrency | " + " | ".join(f"{w} worker(s)" for w in counts) + " |"]
        lines.append("| ---: |" + " ---: |" * len(counts))
        for concurrency, row in sorted(by_c.items()):
            one = row[counts[0]]["rps"]
            cells = [
                f"{row[w]['rps']:.0f} req/s {row[w]['passes']} ({row[w]['rps'] / one:.2f}x), "
                f"p99 {row[w]['p99_ms']:.1f}, "
                f"busiest {row[w]['busiest']:.2f}"
                + (f", **{row[w]['errors']} errors**" if row[w]["errors"] else "")
                for w in counts
            ]
            lines.append(f"| {concurrency} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(path: Path) -> tuple[Path, Path]:
    results = json.loads(path.read_text())
    md = path.with_suffix(".md")
    md.write_text(markdown(results))
    png = path.with_suffix(".png")
    panels = {
        model: {
            f"c={c}": sorted((float(w), v["rps"]) for w, v in row.items()) for c, row in sorted(by_c.items())
        }
        for model, by_c in curves(results).items()
    }
    plot_lines(png, "requests/s against worker processes (x: workers)", panels)
    return md, png


def main() -> None:
    server_default, client_default = default_core_sets()
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="c in (8, 32), 3 s runs")
    parser.add_argument("--server-cores", default=server_default, help=f"taskset list [{server_default}]")
    parser.add_argument("--client-cores", default=client_default, help=f"for wrk [{client_default}]")
    parser.add_argument("--workers", type=int, nargs="+", help="default: 1, 2, 4, ... up to the server cores")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, help="only redraw the report from this workers.json")
    args = parser.parse_args()
    if args.report:
        print(*write_report(args.report), sep="\n")
        return
    counts = args.workers or worker_counts(len(parse_cores(args.server_cores)))
    plan = QUICK if args.quick else FULL
    path = run(plan, args.models, counts, (args.server_cores, args.client_cores), args.out)
    print(path, *write_report(path), sep="\n")


if __name__ == "__main__":
    main()
