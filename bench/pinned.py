"""Server and load generator on core sets given on the command line: the pieces bench/workers.py and
bench/servers.py share. A core set is taskset's syntax (``0``, ``0-7``, ``0,2``); the server and wrk may
share cores (on a 2-core machine they must), and the results say so."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import loadgen, processes
from bench.provenance import ROOT, run_metadata

NICE = "-10"


def parse_cores(spec: str) -> list[int]:
    cores: list[int] = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cores += range(int(low), int(high or low) + 1)
    return sorted(set(cores))


def pinned(argv: list[str], cores: str) -> list[str]:
    return ["taskset", "-c", cores, "nice", "-n", NICE, *argv]


def default_core_sets() -> tuple[str, str]:
    """All of this process's cores for the server; the last one for wrk too (it shares on 2 cores)."""
    cores = sorted(os.sched_getaffinity(0))
    server = ",".join(map(str, cores))
    return server, str(cores[-1])


def short_commit(commit: str) -> str:
    """``abcdef123456`` or ``abcdef123456+dirty``: which code the figures are from."""
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def metadata(server_cores: str, client_cores: str, plan: dict[str, Any]) -> dict[str, Any]:
    shared = set(parse_cores(server_cores)) & set(parse_cores(client_cores))
    return {
        **run_metadata(),
        "server_cores": server_cores,
        "client_cores": client_cores,
        "client_shares_server_cores": sorted(shared),
        "nice": int(NICE),
        "load_generator": "wrk -t1 (closed loop, one connection per concurrent client)",
        "plan": plan,
        "loadavg_start": os.getloadavg(),
    }


def write_results(results: dict[str, Any], started: float, path: Path) -> Path:
    """The run's wall time and closing load average into its metadata, then the whole of it as JSON."""
    results["meta"]["wall_s"] = time.monotonic() - started
    results["meta"]["loadavg_end"] = os.getloadavg()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def wait_all_ready(url: str, payload: loadgen.Payload, in_a_row: int, timeout_s: float = 120) -> None:
    """Several server processes share one socket and load their models each on its own: one 200 says
    little. Wait for ``in_a_row`` successes in a row, each on a new connection (the kernel spreads them)."""
    deadline = time.monotonic() + timeout_s
    streak = 0
    while streak < in_a_row:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: not every server process became ready")
        reply = httpx.post(url, content=payload.body, headers={"content-type": payload.content_type})
        streak = streak + 1 if reply.status_code == 200 else 0
        if reply.status_code != 200:
            time.sleep(0.2)


def drain(url: str, payload: loadgen.Payload) -> None:
    """wrk stops at its deadline, not when the server is idle: one request waits behind what is queued."""
    httpx.post(url, content=payload.body, headers={"content-type": payload.content_type}, timeout=300)
    time.sleep(0.3)


def measure(
    server: processes.Server,
    url: str,
    payload: loadgen.Payload,
    concurrency: int,
    seconds: float,
    server_cores: str,
    client_cores: str,
) -> dict[str, Any]:
    """One wrk run, with the server's CPU (per process of its tree) and what others took of the cores."""
    drain(url, payload)
    watched = sorted(set(parse_cores(server_cores)) | set(parse_cores(client_cores)))
    tree = server.tree()
    per_process_before = {pid: processes.cpu_seconds([pid]) for pid in tree}
    busy_before = sum(processes.core_busy_seconds(core) for core in watched)
    result = loadgen.run_wrk(url, payload, concurrency, seconds, client_cores)
    per_process = {pid: processes.cpu_seconds([pid]) - per_process_before[pid] for pid in tree}
    busy = sum(processes.core_busy_seconds(core) for core in watched) - busy_before
    server_cpu = sum(per_process.values())
    return {
        **result.as_dict(),
        "server_cpu_s": server_cpu,
        # the busiest process's share of the server's CPU: 1/N when N workers split the load evenly
        "busiest_process_share": max(per_process.values()) / server_cpu if server_cpu else 0.0,
        # CPU that other processes of this machine took on the watched cores meanwhile
        "foreign_cpu_s": max(0.0, busy - server_cpu - result.client_cpu_s),
        "loadavg": os.getloadavg()[0],
    }


@contextlib.contextmanager
def pinned_server(
    name: str,
    argv: list[str],
    env: dict[str, str],
    url: str,
    payload: loadgen.Payload,
    cores: tuple[str, str],
    scratch: Path,
    warmup: tuple[int, float],
    processes_to_warm: int = 1,
) -> Iterator[processes.Server]:
    """``argv`` started pinned to the server cores, every one of its processes answering, warmed up with
    wrk (``warmup``: concurrency, seconds); stopped on exit whatever happens."""
    server = processes.start(name, pinned(argv, cores[0]), env, scratch, ROOT)
    try:
        probe: tuple[str, dict[str, object]] = (
            "POST",
            {"content": payload.body, "headers": {"content-type": payload.content_type}},
        )
        processes.wait_ready(server, url, probe, 120)
        wait_all_ready(url, payload, in_a_row=8 * processes_to_warm)
        loadgen.run_wrk(url, payload, warmup[0], warmup[1], cores[1])
        yield server
    finally:
        server.stop()


def serve_and_measure(
    name: str,
    argv: list[str],
    env: dict[str, str],
    url: str,
    payload: loadgen.Payload,
    plan: dict[str, Any],
    cores: tuple[str, str],
    scratch: Path,
    processes_to_warm: int = 1,
) -> list[dict[str, Any]]:
    """A ``pinned_server``, then one wrk run per concurrency of ``plan``."""
    rows = []
    warmup = (max(plan["concurrencies"]), plan["warmup_s"])
    with pinned_server(name, argv, env, url, payload, cores, scratch, warmup, processes_to_warm) as server:
        for concurrency in plan["concurrencies"]:
            row = measure(server, url, payload, concurrency, plan["duration_s"], *cores)
            rows.append(row)
            print(
                f"  {name:>28} c={concurrency:<3} {row['throughput_rps']:8.1f} req/s"
                f"  p99 {row['p99_ms']:7.1f} ms  busiest {row['busiest_process_share']:.2f}"
                f"  errors {row['errors']}",
                flush=True,
            )
    return rows


def plot_lines(path: Path, title: str, panels: dict[str, dict[str, list[tuple[float, float]]]]) -> None:
    """One panel per key, one line per series of (x, y) points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (panel, series) in zip(axes[0], panels.items(), strict=True):
        for label, points in series.items():
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
        ax.set_xticks(sorted({x for points in series.values() for x, _ in points}))
        ax.set_ylim(bottom=0)
        ax.set_title(panel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
