"""What one core could serve, at most, for one digit per request, measured here, and how near poolserve is.

    python -m bench.ceiling [--quick] [--rounds N] [--out DIR]

The arithmetic. A digit classification costs a core at least what the HTTP server costs a framework-free
ASGI callable (``bench.targets.noop``: read the body, answer a fixed JSON), plus the work no server can
skip for one digit: decode the PNG and normalize it, onnxruntime's share of a batch of 32, softmax and
top-5 on that share, and encoding the answer. One second divided by that sum is the ceiling of one core;
the goal set for poolserve is half of it. Both depend on the host (the same figures measured 2.6 times
faster on another machine), so the verdict is the ratio, measured on one host in one run.

Servers: uvicorn with httptools and uvloop, as ``poolserve serve`` runs it, pinned to the first of this
process's cores; wrk on the last, 32 connections, one held-out digit per request as a raw PNG body.
``noop`` is the no-op app; ``poolserve`` is ``poolserve serve`` on the shipped repository with one
onnxruntime thread (``bench.servers``' settings). Both start once and are warmed up. Each round runs wrk
on each server (alternating which goes first), then times the pieces in this process, pinned to the
server core while both servers idle (best of several repeats). A drifting host moves one round's figures
alike, so every ratio is taken within a round; the report gives the median round and the range. Writes
``ceiling.json`` and ``ceiling.md`` (default ``bench/results/``; ``--quick``: ``bench/results/quick/``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import loadgen, payloads, processes
from bench.pinned import measure, pinned_server
from bench.provenance import run_metadata, save_results
from bench.servers import server_argv, server_env
from bench.suite import ROOT, free_port

MODEL = "lenet5-mnist"
CONCURRENCY = 32
BATCH = 32  # the largest batch 32 clients can form: the best case, as a ceiling should take
SERVERS = ("noop", "poolserve")
FULL = {"rounds": 5, "duration_s": 5.0, "warmup_s": 2.0, "number": 2000, "repeat": 5}
QUICK = {"rounds": 2, "duration_s": 2.0, "warmup_s": 1.0, "number": 300, "repeat": 3}

# label -> (what it is, for the report)
PIECES = {
    "decode": "decode + normalize one PNG (poolserve's plain-PNG path, the fastest in this repository)",
    "onnxruntime": f"onnxruntime on a batch of {BATCH}, per image (one thread)",
    "softmax": f"softmax on a batch of {BATCH}, per image",
    "top-k": "the top 5 of one image's scores, as the answer lists them",
    "json": "JSON encode of poolserve's answer (orjson)",
}
Piece = tuple[Callable[[], object], int]  # a call and how many requests' worth of work it does


def work_pieces(entry: Path, png: bytes, answer: bytes) -> dict[str, Piece]:
    """The work no server can skip for one digit, each piece as a call on poolserve's own code and model."""
    from poolserve.repository.manifest import Manifest
    from poolserve.service.imaging.preprocess import decode_and_preprocess
    from poolserve.service.runtime.postprocess import probabilities, top_k
    from poolserve.service.runtime.sessions import SessionConfig, create_session

    manifest = Manifest.model_validate_json((entry / "manifest.json").read_text())
    spec, labels = manifest.preprocessing, manifest.labels
    image, _ = decode_and_preprocess([png], spec, max_pixels=1 << 24)
    session = create_session(entry / manifest.model_file, SessionConfig(["CPUExecutionProvider"], 1, 1))
    feed = {session.get_inputs()[0].name: np.concatenate([image] * BATCH)}
    scores = session.run(None, feed)[0]
    are_probabilities = manifest.io.scores_are_probabilities
    one_row = probabilities(scores, are_probabilities)[:1]
    document = orjson.loads(answer)
    return {
        "decode": (lambda: decode_and_preprocess([png], spec, max_pixels=1 << 24), 1),
        "onnxruntime": (lambda: session.run(None, feed), BATCH),
        "softmax": (lambda: probabilities(scores, are_probabilities), BATCH),
        "top-k": (lambda: top_k(one_row, labels, 5), 1),
        "json": (lambda: orjson.dumps(document), 1),
    }


def time_pieces(pieces: dict[str, Piece], number: int, repeat: int) -> dict[str, float]:
    """µs per request of each piece: the best of ``repeat`` timings of ``number`` calls."""
    timings = {}
    for label, (call, requests_per_call) in pieces.items():
        calls = max(1, number // requests_per_call)
        best = min(timeit.repeat(call, number=calls, repeat=repeat))
        timings[label] = 1e6 * best / (calls * requests_per_call)
    return timings


@contextlib.contextmanager
def on_cores(cores: set[int]) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def derive(round_: dict[str, Any]) -> dict[str, float]:
    """One round's ceiling, aim and poolserve's place against them."""
    noop, served = round_["servers"]["noop"], round_["servers"]["poolserve"]
    http_us = 1e6 * noop["server_cpu_s"] / noop["requests"]
    work_us = sum(round_["pieces_us"].values())
    floor_us = http_us + work_us
    ceiling = 1e6 / floor_us
    poolserve_cpu_us = 1e6 * served["server_cpu_s"] / served["requests"]
    return {
        "http_us": http_us,
        "work_us": work_us,
        "floor_us": floor_us,
        "ceiling_rps": ceiling,
        "aim_rps": ceiling / 2,
        "poolserve_rps": served["throughput_rps"],
        "poolserve_cpu_us": poolserve_cpu_us,
        "glue_us": poolserve_cpu_us - floor_us,
        "of_ceiling": served["throughput_rps"] / ceiling,
        "of_aim": served["throughput_rps"] / (ceiling / 2),
        "floor_over_cpu": floor_us / poolserve_cpu_us,
    }


def run(plan: dict[str, Any]) -> dict[str, Any]:
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = str(cores[0]), str(cores[-1])
    scratch = ROOT / ".bench-work" / "ceiling"
    scratch.mkdir(parents=True, exist_ok=True)
    png = payloads.digit_png()
    payload = loadgen.Payload("image/png", png)
    entry = ROOT / "model_repository" / MODEL / "1"
    meta = run_metadata() | {
        "server_core": server_core,
        "client_core": client_core,
        "concurrency": CONCURRENCY,
        "plan": plan,
        "load_before": os.getloadavg()[0],
    }
    servers: dict[str, tuple[processes.Server, str]] = {}
    rounds = []
    cores_of = (server_core, client_core)
    os.sched_setaffinity(0, {int(client_core)})  # the harness stays off the server core
    with contextlib.ExitStack() as running:
        for name in SERVERS:
            port = free_port()
            url = f"http://127.0.0.1:{port}/v1/models/{MODEL}/classify"
            argv, env = server_argv("uvicorn", name, port, workers=1), server_env(port)
            warmup = (CONCURRENCY, plan["warmup_s"])
            server = running.enter_context(
                pinned_server(f"ceiling-{name}", argv, env, url, payload, cores_of, scratch, warmup)
            )
            servers[name] = (server, url)
        answer = poolserve_answer(servers["poolserve"][1], png)
        pieces = work_pieces(entry, png, answer)
        for number in range(plan["rounds"]):
            order = SERVERS if number % 2 == 0 else SERVERS[::-1]
            figures = {}
            for name in order:
                server, url = servers[name]
                figures[name] = measure(server, url, payload, CONCURRENCY, plan["duration_s"], *cores_of)
            with on_cores({int(server_core)}):
                pieces_us = time_pieces(pieces, plan["number"], plan["repeat"])
            round_: dict[str, Any] = {"round": number, "servers": figures, "pieces_us": pieces_us}
            d = round_["derived"] = derive(round_)
            rounds.append(round_)
            print(
                f"round {number}: ceiling {d['ceiling_rps']:.0f} req/s, poolserve {d['poolserve_rps']:.0f}"
                f" ({d['of_aim']:.2f} of the aim)",
                flush=True,
            )
    meta["load_after"] = os.getloadavg()[0]
    return {"meta": meta, "model": MODEL, "rounds": rounds}


def poolserve_answer(url: str, png: bytes) -> bytes:
    """poolserve's real answer for the digit: what the JSON piece encodes."""
    import httpx

    reply = httpx.post(url, content=png, headers={"content-type": "image/png"}, timeout=30)
    reply.raise_for_status()
    return reply.content


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose poolserve-to-aim ratio is the median (the lower middle one for an even count)."""
    ordered = sorted(rounds, key=lambda r: r["derived"]["of_aim"])
    return ordered[(len(ordered) - 1) // 2]


def _spread(rounds: list[dict[str, Any]], value: Callable[[dict[str, Any]], float], digits: int) -> str:
    values = [value(r) for r in rounds]
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    meta, rounds = results["meta"], results["rounds"]
    plan = meta["plan"]
    middle = median_round(rounds)
    d = middle["derived"]
    lines = [
        f"# The one-core ceiling: {results['model']}, one digit PNG per request",
        "",
        f"`{meta['command']}` at commit `{meta['git_commit']}`, {meta['cpu']}, {meta['cores']} cores, load"
        f" average {meta['load_before']:.2f} before and {meta['load_after']:.2f} after. Server on core"
        f" {meta['server_core']}, wrk on core {meta['client_core']} at {meta['concurrency']} connections,"
        f" {plan['duration_s']:g} s a run; {len(rounds)} rounds, servers alternating. Figures below are the"
        f" median round's (by poolserve ÷ aim, round {middle['round']}), with every round's range.",
        "",
        "| what a digit request costs one core, at least | µs | range over rounds |",
        "| --- | ---: | ---: |",
        "| HTTP: uvicorn + a no-op ASGI app (server CPU per request) |"
        f" {d['http_us']:.1f} | {_spread(rounds, lambda r: r['derived']['http_us'], 1)} |",
    ]
    for label, what in PIECES.items():
        costs = [r["pieces_us"][label] for r in rounds]
        lines.append(f"| {what} | {middle['pieces_us'][label]:.1f} | {min(costs):.1f}–{max(costs):.1f} |")
    lines += [
        f"| **the floor (sum)** | **{d['floor_us']:.1f}** |"
        f" {_spread(rounds, lambda r: r['derived']['floor_us'], 1)} |",
        "",
        "| per round | req/s | range over rounds |",
        "| --- | ---: | ---: |",
        f"| the no-op app, served | {middle['servers']['noop']['throughput_rps']:.0f} |"
        f" {_spread(rounds, lambda r: r['servers']['noop']['throughput_rps'], 0)} |",
        f"| ceiling: 1 s ÷ the floor | {d['ceiling_rps']:.0f} |"
        f" {_spread(rounds, lambda r: r['derived']['ceiling_rps'], 0)} |",
        f"| aim: half the ceiling | {d['aim_rps']:.0f} |"
        f" {_spread(rounds, lambda r: r['derived']['aim_rps'], 0)} |",
        f"| poolserve, served | {d['poolserve_rps']:.0f} |"
        f" {_spread(rounds, lambda r: r['derived']['poolserve_rps'], 0)} |",
        "",
        "| poolserve against them | median round | range over rounds |",
        "| --- | ---: | ---: |",
        f"| poolserve ÷ aim | **{d['of_aim']:.2f}** |"
        f" {_spread(rounds, lambda r: r['derived']['of_aim'], 2)} |",
        f"| poolserve ÷ ceiling | {d['of_ceiling']:.2f} |"
        f" {_spread(rounds, lambda r: r['derived']['of_ceiling'], 2)} |",
        f"| poolserve's server CPU per request, µs | {d['poolserve_cpu_us']:.0f} |"
        f" {_spread(rounds, lambda r: r['derived']['poolserve_cpu_us'], 0)} |",
        f"| of which beyond the floor (framework, validation, batching, metrics), µs | {d['glue_us']:.0f} |"
        f" {_spread(rounds, lambda r: r['derived']['glue_us'], 0)} |",
        f"| poolserve p99 at c={meta['concurrency']}, ms | {middle['servers']['poolserve']['p99_ms']:.1f} |"
        f" {_spread(rounds, lambda r: r['servers']['poolserve']['p99_ms'], 1)} |",
        f"| errors (both servers, all rounds) | {_errors(rounds)} | |",
    ]
    return "\n".join(lines) + "\n"


def _errors(rounds: list[dict[str, Any]]) -> int:
    return sum(int(s["errors"]) for r in rounds for s in r["servers"].values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s runs (default 5 of 5 s)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    if args.rounds is not None:
        plan["rounds"] = args.rounds
    results = run(plan)
    results["meta"]["command"] = "python -m bench.ceiling" + " ".join(["", *(argv or sys.argv[1:])])
    save_results("ceiling", results, markdown(results), args.out, args.quick)


if __name__ == "__main__":
    main()
