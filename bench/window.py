"""The batching window, measured: poolserve's windows against no window, across concurrency, on the digit
model and the ResNet-size model.

    python -m bench.window [--quick] [--models digits resnet]

Policies are settings of the same code, so nothing else differs between them:

- ``measured``: the default window (waits under load only while the oldest request has queued less than
  the batch is expected to run, at most the manifest's ``max_queue_delay_ms``);
- ``max-delay``: ``POOLSERVE_BATCH_WINDOW=max-delay``, the previous default (waits the whole
  ``max_queue_delay_ms`` under load);
- ``delay0``: ``POOLSERVE_MAX_QUEUE_DELAY_MS=0``, no window (a batch is whatever queued while the last
  one ran).

The three servers of a model run at once, each pinned to core 0 with one onnxruntime thread (only the one
under load works); wrk runs on core 1, as in ``python -m bench run``. For each concurrency the policies take
turns, in a rotated order each round (A B C, B C A, ...), so that this shared host's drift falls on all of
them alike; a cell is the median over rounds. Each run also reads the server's ``/metrics`` before and after
for the mean batch size. Writes bench/results/window.json, window.md and window.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import loadgen, payloads, processes
from bench.provenance import run_metadata
from bench.suite import POOLSERVE, ROOT

SERVER_CORES = "0"
CLIENT_CORES = "1"
NICE = "-10"
RESULTS = ROOT / "bench" / "results"
SCRATCH = ROOT / ".bench-work" / "window"
BENCH_REPOSITORY = ROOT / ".bench-repository"
POLICIES: dict[str, dict[str, str]] = {
    "delay0": {"POOLSERVE_MAX_QUEUE_DELAY_MS": "0"},
    "max-delay": {"POOLSERVE_BATCH_WINDOW": "max-delay"},
    "measured": {"POOLSERVE_BATCH_WINDOW": "measured"},
}
BASELINE = "delay0"
NEW = "measured"


@dataclass(frozen=True)
class Comparison:
    """Servers of the same code under different settings, measured in turns by this harness; ``name``
    names the results files (bench/results/<name>.json, .md, .png)."""

    name: str
    policies: dict[str, dict[str, str]]  # policy -> its POOLSERVE_* variables
    baseline: str
    new: str


WINDOW = Comparison("window", POLICIES, BASELINE, NEW)
MAX_RUN_S = 60.0


@dataclass(frozen=True)
class Plan:
    concurrencies: tuple[int, ...]
    duration_s: float  # at least; see round_trips
    rounds: int
    models: tuple[str, ...]
    # A closed loop at concurrency c answers about throughput / c requests per connection per second: a
    # run lasts at least this many round trips per connection (at the rate measured at c=1), so that a
    # slow model's high-concurrency cells hold more than the requests in flight when wrk stops.
    round_trips: int = 4


FULL = Plan((1, 8, 32, 64), 5.0, 3, ("digits", "resnet"))
QUICK = Plan((1, 8, 32, 64), 2.0, 2, ("digits", "resnet"), round_trips=2)


def _entry(model: str) -> Path:
    if model == "digits":
        return ROOT / "model_repository" / "lenet5-mnist" / "1"
    from bench.resnet import NAME, write_entry

    entry = BENCH_REPOSITORY / NAME / "1"
    return entry if (entry / "manifest.json").exists() else write_entry(BENCH_REPOSITORY)


def _payload(model: str) -> loadgen.Payload:
    if model == "digits":
        return payloads.classify_payload(payloads.digit_png(), "image/png")
    return payloads.classify_payload(payloads.photo_jpeg(), "image/jpeg")


def _post(url: str, payload: loadgen.Payload) -> httpx.Response:
    return httpx.post(url, content=payload.body, headers={"content-type": payload.content_type}, timeout=300)


@dataclass
class PolicyServer:
    policy: str
    server: processes.Server
    url: str  # the classify route
    metrics_url: str


def _start(
    plan: Plan, comparison: Comparison, policy: str, model: str, entry: Path, payload: loadgen.Payload
) -> PolicyServer:
    name = json.loads((entry / "manifest.json").read_text())["name"]
    launch = POOLSERVE.launch(entry, SCRATCH, name)
    # The server runs under this benchmark's own interpreter (the project's virtualenv).
    argv = ["taskset", "-c", SERVER_CORES, "nice", "-n", NICE, sys.executable, *launch.argv[1:]]
    # Every request must reach the batcher: the decode budget (503 past 4 uploads decoding in threads at
    # once, which 224x224 JPEGs are) is opened to the top concurrency, for every policy alike.
    decodes = {"POOLSERVE_MAX_CONCURRENT_DECODES": str(max(plan.concurrencies))}
    env = {**launch.env, **decodes, **comparison.policies[policy]}
    server = processes.start(f"{model}-{policy}", argv, env, SCRATCH, ROOT)
    probe: tuple[str, dict[str, object]] = (
        "POST",
        {"content": payload.body, "headers": {"content-type": payload.content_type}},
    )
    try:
        processes.wait_ready(server, launch.url, probe, launch.ready_timeout_s)
    except RuntimeError:
        server.stop()
        raise
    return PolicyServer(policy, server, launch.url, launch.url.split("/v1/")[0] + "/metrics")


def _server_counters(metrics_url: str, model: str) -> dict[str, float]:
    """Counters so far from poolserve's histograms: batches run and the images in them, the batching
    window's wait (total seconds, and batches that did not wait at all), and the garbage collector's pauses
    (all generations' total seconds, and the full collections' number and seconds)."""
    text = httpx.get(metrics_url, timeout=30).text
    label = f'model="{re.escape(model)}"'
    series = {
        "batches": rf"poolserve_batch_size_count{{{label}}}",
        "images": rf"poolserve_batch_size_sum{{{label}}}",
        "waits": rf"poolserve_batch_window_wait_seconds_count{{{label}}}",
        "wait_s": rf"poolserve_batch_window_wait_seconds_sum{{{label}}}",
        "no_wait": rf'poolserve_batch_window_wait_seconds_bucket{{le="0.0",{label}}}',
        "gc_full": r'poolserve_gc_pause_seconds_count{generation="2"}',
        "gc_full_s": r'poolserve_gc_pause_seconds_sum{generation="2"}',
    }
    found = {}
    for key, name in series.items():
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        found[key] = float(match.group(1)) if match else 0.0
    gc_sums = re.findall(r"^poolserve_gc_pause_seconds_sum\S* (\S+)$", text, re.M)
    found["gc_s"] = sum(float(v) for v in gc_sums)
    return found


def _measure(
    target: PolicyServer, model: str, payload: loadgen.Payload, concurrency: int, seconds: float
) -> dict[str, Any]:
    _post(target.url, payload)  # waits behind anything the previous run left queued
    before = _server_counters(target.metrics_url, model)
    cpu_before = processes.cpu_seconds(target.server.tree())
    core_before = processes.core_busy_seconds(int(SERVER_CORES))
    result = loadgen.run_wrk(target.url, payload, concurrency, seconds, CLIENT_CORES)
    cpu = processes.cpu_seconds(target.server.tree()) - cpu_before
    core = processes.core_busy_seconds(int(SERVER_CORES)) - core_before
    after = _server_counters(target.metrics_url, model)
    delta = {key: after[key] - before[key] for key in after}
    batches, waits = delta["batches"], delta["waits"]
    return {
        **result.as_dict(),
        "mean_batch_images": delta["images"] / batches if batches else 0.0,
        "window_wait_ms_per_batch": 1000 * delta["wait_s"] / waits if waits else 0.0,
        "batches_waited_share": 1 - delta["no_wait"] / waits if waits else 0.0,
        "cpu_us_per_image": 1e6 * cpu / delta["images"] if delta["images"] else 0.0,
        "gc_pause_ms_per_s": 1000 * delta["gc_s"] / result.duration_s,
        "gc_full_collections": delta["gc_full"],
        "gc_full_ms_mean": 1000 * delta["gc_full_s"] / delta["gc_full"] if delta["gc_full"] else 0.0,
        "server_cpu_s": cpu,
        "foreign_cpu_on_server_core_s": max(0.0, core - cpu),
        "loadavg": os.getloadavg()[0],
    }


def _duration(plan: Plan, concurrency: int, rps: float) -> float:
    return min(MAX_RUN_S, max(plan.duration_s, plan.round_trips * concurrency / max(rps, 1e-3)))


def _model_block(plan: Plan, comparison: Comparison, model: str) -> list[dict[str, Any]]:
    entry = _entry(model)
    name = json.loads((entry / "manifest.json").read_text())["name"]
    payload = _payload(model)
    targets: list[PolicyServer] = []
    rows = []
    try:
        for policy in comparison.policies:
            targets.append(_start(plan, comparison, policy, model, entry, payload))
        # Warm every server up (onnxruntime's first batches, the batch-cost average), one client then many;
        # the rate of one client sets how long the runs must be.
        warm = [loadgen.run_wrk(t.url, payload, 1, plan.duration_s, CLIENT_CORES) for t in targets]
        rps = statistics.median(w.throughput_rps for w in warm)
        for target in targets:
            loadgen.run_wrk(target.url, payload, max(plan.concurrencies), plan.duration_s, CLIENT_CORES)
        for concurrency in plan.concurrencies:
            seconds = _duration(plan, concurrency, rps)
            for round_no in range(plan.rounds):
                shift = round_no % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    row = _measure(target, name, payload, concurrency, seconds)
                    rows.append({"model": name, "policy": target.policy, "round": round_no, **row})
                    print(
                        f"  {name:>14} {target.policy:>9} c={concurrency:<3} round {round_no} "
                        f"{row['images_per_s']:8.1f} img/s  p99 {row['p99_ms']:8.1f} ms  "
                        f"batch {row['mean_batch_images']:5.1f}  load {row['loadavg']:.2f}",
                        flush=True,
                    )
    finally:
        for target in targets:
            target.server.stop()
    return rows


def run(plan: Plan, out: Path, command: str, comparison: Comparison = WINDOW) -> Path:
    os.sched_setaffinity(0, {int(c) for c in CLIENT_CORES.split(",")})  # the harness stays off core 0
    SCRATCH.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    meta = {
        **run_metadata(),
        "command": command,
        "plan": plan.__dict__,
        "policies": comparison.policies,
        "baseline": comparison.baseline,
        "new": comparison.new,
        "server_cores": SERVER_CORES,
        "client_cores": CLIENT_CORES,
        "loadavg_start": os.getloadavg(),
    }
    runs: list[dict[str, Any]] = []
    for model in plan.models:
        print(f"== {model}", flush=True)
        runs.extend(_model_block(plan, comparison, model))
    meta["wall_s"] = time.monotonic() - started
    meta["loadavg_end"] = os.getloadavg()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{comparison.name}.json"
    path.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    return path


def cells(runs: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, float]]:
    """(model, policy, concurrency) -> medians over rounds, and the spread of images/s."""
    grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in runs:
        grouped.setdefault((row["model"], row["policy"], row["concurrency"]), []).append(row)
    return {
        key: {
            "images_per_s": statistics.median(r["images_per_s"] for r in rows),
            "p50_ms": statistics.median(r["p50_ms"] for r in rows),
            "p95_ms": statistics.median(r["p95_ms"] for r in rows),
            "p99_ms": statistics.median(r["p99_ms"] for r in rows),
            "mean_batch_images": statistics.median(r["mean_batch_images"] for r in rows),
            "window_wait_ms": statistics.median(r.get("window_wait_ms_per_batch", 0.0) for r in rows),
            "waited_share": max(r.get("batches_waited_share", 0.0) for r in rows),
            "cpu_us_per_image": statistics.median(r.get("cpu_us_per_image", 0.0) for r in rows),
            "gc_pause_ms_per_s": statistics.median(r.get("gc_pause_ms_per_s", 0.0) for r in rows),
            "gc_full_collections": statistics.median(r.get("gc_full_collections", 0.0) for r in rows),
            "gc_full_ms_mean": statistics.median(r.get("gc_full_ms_mean", 0.0) for r in rows),
            "images_per_s_min": min(r["images_per_s"] for r in rows),
            "images_per_s_max": max(r["images_per_s"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "rounds": len(rows),
            "foreign_share": max(r["foreign_cpu_on_server_core_s"] / r["duration_s"] for r in rows),
        }
        for key, rows in grouped.items()
    }


def run_line(meta: dict[str, Any]) -> str:
    """What ran, where and when, and how busy the host was."""
    return (
        f"`{meta['command']}`, "
        f"{meta['started']} at commit `{meta['git_commit'][:12]}` on {meta['cpu']} ({meta['cores']} cores), "
        f"{meta['wall_s'] / 60:.1f} minutes; load average {meta['loadavg_start'][0]:.2f} at the start, "
        f"{meta['loadavg_end'][0]:.2f} at the end. Servers pinned to core {meta['server_cores']} (one "
        f"onnxruntime thread), wrk (one thread, closed loop) to core {meta['client_cores']}. Plan: "
        f"{meta['plan']}."
    )


def settings_line(meta: dict[str, Any]) -> str:
    """Each compared setting's POOLSERVE_* variables."""
    return "; ".join(
        f"`{p}`: {' '.join(f'{k}={v}' for k, v in env.items())}" for p, env in meta["policies"].items()
    )


# A report column: its header, and its text for a cell (bench.window.cells' medians)
Column = tuple[str, Callable[[dict[str, float]], str]]


def model_table(
    table: dict[tuple[str, str, int], dict[str, float]],
    model: str,
    first: str,
    policies: list[str],
    baseline: str,
    columns: list[Column],
) -> list[str]:
    """One model's rows, a policy per row within each concurrency: the policy, c, images/s (median, min–max
    over rounds), ``columns``, then throughput and p99 divided by ``baseline``'s at that concurrency."""
    lines = [
        f"| {first} | c | images/s (min–max) | "
        + " | ".join(header for header, _ in columns)
        + f" | img/s ÷ {baseline} | p99 ÷ {baseline} |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in columns) + " | ---: | ---: |",
    ]
    for concurrency in sorted({c for m, _, c in table if m == model}):
        base = table.get((model, baseline, concurrency))
        for policy in policies:
            cell = table.get((model, policy, concurrency))
            if cell is None:
                continue
            ratios = ["–", "–"]
            if base is not None and policy != baseline:
                ratios = [
                    f"{cell['images_per_s'] / base['images_per_s']:.2f}",
                    f"{cell['p99_ms'] / base['p99_ms']:.2f}",
                ]
            errors = f" **{cell['errors']} errors**" if cell["errors"] else ""
            spread = f"{cell['images_per_s_min']:.0f}–{cell['images_per_s_max']:.0f}"
            values = [f"{cell['images_per_s']:.1f} ({spread}){errors}", *(show(cell) for _, show in columns)]
            lines.append(f"| {policy} | {concurrency} | " + " | ".join([*values, *ratios]) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    meta, table = results["meta"], cells(results["runs"])
    policies = list(meta["policies"])
    lines = [
        "# The batching window: poolserve's windows vs no window",
        "",
        run_line(meta),
        "",
        "Policies (settings of the same code): "
        + settings_line(meta)
        + f". Each cell is the median of {meta['plan']['rounds']} rounds, the policies taking turns in a "
        "rotated order; `÷ delay0` divides by the no-window figure at the same concurrency (throughput: "
        "above 1 is better; p99: below 1 is better).",
        "",
    ]
    columns: list[Column] = [
        ("p50 ms", lambda cell: f"{cell['p50_ms']:.1f}"),
        ("p99 ms", lambda cell: f"{cell['p99_ms']:.1f}"),
        ("images per batch", lambda cell: f"{cell['mean_batch_images']:.1f}"),
        (
            "window wait ms per batch (batches that waited)",
            lambda cell: f"{cell['window_wait_ms']:.2f} ({cell['waited_share']:.0%})",
        ),
        ("server CPU µs per image", lambda cell: f"{cell['cpu_us_per_image']:.0f}"),
    ]
    for model in sorted({m for m, _, _ in table}):
        lines += [f"## {model}", "", *model_table(table, model, "policy", policies, BASELINE, columns), ""]
    lines += [*verdict(table), ""]
    return "\n".join(lines)


def paired_cells(
    table: dict[tuple[str, str, int], dict[str, float]], baseline: str, new: str
) -> list[tuple[str, int, dict[str, float], dict[str, float]]]:
    """(model, concurrency, ``new``'s cell, ``baseline``'s cell) wherever both settings ran."""
    return [
        (model, c, cell, table[(model, baseline, c)])
        for (model, policy, c), cell in table.items()
        if policy == new and (model, baseline, c) in table
    ]


def verdict(table: dict[tuple[str, str, int], dict[str, float]]) -> list[str]:
    """The new window's worst cell against no window, in throughput and in p99; and the cells where it
    never held a batch open, so that it ran exactly what no window runs and any difference is the host's."""
    pairs = paired_cells(table, BASELINE, NEW)
    if not pairs:
        return []
    rate = min(pairs, key=lambda p: p[2]["images_per_s"] / p[3]["images_per_s"])
    p99 = max(pairs, key=lambda p: p[2]["p99_ms"] / p[3]["p99_ms"])
    lines = [
        f"`{NEW}` against `{BASELINE}`, worst cells: throughput "
        f"{rate[2]['images_per_s'] / rate[3]['images_per_s']:.2f}× ({rate[0]}, c={rate[1]}), "
        f"p99 {p99[2]['p99_ms'] / p99[3]['p99_ms']:.2f}× ({p99[0]}, c={p99[1]}).",
    ]
    idle = sorted(f"{model} c={c}" for model, c, cell, _ in pairs if cell.get("waited_share", 1.0) == 0.0)
    if idle:
        lines += [
            "",
            f"Cells where `{NEW}` held no batch open in any round (so it ran what `{BASELINE}` runs, and the "
            f"ratio there measures the host, not the policy): {', '.join(idle)}.",
        ]
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = cells(results["runs"])
    new = results["meta"].get("new", NEW)
    models = sorted({m for m, _, _ in table})
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 4.5 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for policy in results["meta"]["policies"]:
            points = sorted((c, cell) for (m, p, c), cell in table.items() if m == model and p == policy)
            xs = [c for c, _ in points]
            style = {"linewidth": 3, "color": "black"} if policy == new else {"linewidth": 1.5}
            axes[row][0].plot(
                xs, [cell["images_per_s"] for _, cell in points], marker="o", label=policy, **style
            )
            axes[row][1].plot(xs, [cell["p99_ms"] for _, cell in points], marker="o", label=policy, **style)
        axes[row][0].set_title(f"{model}: throughput (images/s, median of rounds)")
        axes[row][1].set_title(f"{model}: p99 latency (ms)")
        axes[row][1].set_yscale("log")
        for ax in axes[row]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.grid(True, alpha=0.3)
        axes[row][0].set_ylim(bottom=0)
        axes[row][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(results_path: Path, render: Callable[[dict[str, Any]], str] = markdown) -> tuple[Path, Path]:
    """The .md (``render``'s text) and the .png beside a comparison's results JSON."""
    results = json.loads(results_path.read_text())
    md = results_path.with_suffix(".md")
    md.write_text(render(results))
    png = results_path.with_suffix(".png")
    plot(results, png)
    return md, png


def cli(argv: list[str] | None, comparison: Comparison, report: Callable[[Path], tuple[Path, Path]]) -> None:
    """``python -m bench.<comparison.name>``: run the comparison (or only redraw ``report``'s files)."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{comparison.name}")
    parser.add_argument("--quick", action="store_true", help="2 s runs, 2 rounds")
    parser.add_argument("--models", nargs="+", choices=["digits", "resnet"], default=None)
    parser.add_argument("--out", type=Path, default=RESULTS, help="default bench/results")
    parser.add_argument("--report", type=Path, default=None, help="only redraw .md and .png from this json")
    args = parser.parse_args(argv)
    if args.report:
        print(*report(args.report), sep="\n")
        return
    plan = QUICK if args.quick else FULL
    if args.models:
        plan = dataclasses.replace(plan, models=tuple(args.models))
    # Background jobs of a non-interactive shell ignore SIGINT; SIGTERM must stop the servers too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    command = f"python -m bench.{comparison.name}" + (" --quick" if args.quick else "")
    command += f" --models {' '.join(args.models)}" if args.models else ""
    path = run(plan, args.out, command, comparison)
    print(path, *report(path), sep="\n")


def main(argv: list[str] | None = None) -> None:
    cli(argv, WINDOW, write_report)


if __name__ == "__main__":
    main()
