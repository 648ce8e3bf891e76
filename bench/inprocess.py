"""poolserve's per-request CPU cost without HTTP or a load generator: the ASGI app called directly.

    python -m bench.inprocess lenet5-mnist [requests] [concurrency] [rounds] [--profile]

Each request is the benchmark's digit upload (``bench/payloads.py``) handed to the app as ASGI messages,
``concurrency`` at a time on one event loop, so the figures are the app's own work: routing, middleware,
dependencies, multipart parsing, decoding, batching, inference and encoding. What uvicorn and the socket
add is not in them. ``--profile`` prints cProfile's top functions by own time (slower; shares, not times).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import time
from typing import Any

from bench import payloads, suite
from bench.loadgen import Payload

LOAD_TIMEOUT_S = 300.0  # the default repository loads in seconds; a stuck load should not hang a run


def asgi_scope(path: str, payload: Payload) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", payload.content_type.encode()),
            (b"content-length", str(len(payload.body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def one_request(app: Any, scope: dict[str, Any], body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a disconnect never comes while the response is pending
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope), receive, send)
    return status


async def model_ready(app: Any, model: str, timeout_s: float = LOAD_TIMEOUT_S) -> None:
    """Wait for ``app``'s models to load, then insist that ``model`` serves. A model that did not load would
    leave every request a 404 or 503, and a load that never ends would hang the benchmark: both stop it
    with the reason instead."""
    registry = app.state.runtime.registry
    where = os.environ.get("POOLSERVE_REPOSITORY", "the repository")
    try:
        await asyncio.wait_for(registry.wait_loaded(), timeout_s)
    except TimeoutError:
        raise SystemExit(f"the models in {where} did not finish loading within {timeout_s:g} s") from None
    entry = next((e for e in registry.entries() if e.name == model), None)
    if entry is None or entry.status != "ready":
        reason = "not found" if entry is None else f"{entry.status}: {entry.reason}"
        raise SystemExit(f"{model} is not ready in {where} ({reason})")


async def drive(app: Any, scope: dict[str, Any], body: bytes, requests: int, concurrency: int) -> None:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status = await one_request(app, scope, body)
            if status != 200:
                raise RuntimeError(f"status {status}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _main(model: str, requests: int, concurrency: int, profile: bool, rounds: int) -> None:
    os.environ.setdefault("POOLSERVE_REPOSITORY", str(suite.ROOT / "model_repository"))
    os.environ.setdefault("POOLSERVE_INTRA_OP_THREADS", "1")
    os.environ.setdefault("POOLSERVE_INTER_OP_THREADS", "1")
    os.environ.setdefault("POOLSERVE_LOG_LEVEL", "warning")
    import importlib

    module, _, factory = os.environ.get("BENCH_APP", "poolserve.service.app:create_app").partition(":")
    app = getattr(importlib.import_module(module), factory)()
    payload = payloads.classify_payload(payloads.digit_png(), "image/png")
    scope = asgi_scope(f"/v1/models/{model}/classify", payload)
    async with app.router.lifespan_context(app):
        if getattr(app.state, "runtime", None) is not None:  # None: a reference app without models
            await model_ready(app, model)
        await drive(app, scope, payload.body, 200, concurrency)  # warm-up
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        walls, cpus = [], []
        for _ in range(rounds):  # this VM's speed drifts by tens of percent: the best round is the figure
            wall, cpu = time.perf_counter(), time.process_time()
            await drive(app, scope, payload.body, requests, concurrency)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        if profiler:
            profiler.disable()
    wall, cpu = min(walls), min(cpus)
    print(
        f"{model} c={concurrency}: {requests / wall:.0f} req/s, "
        f"{1e6 * wall / requests:.0f} us wall and {1e6 * cpu / requests:.0f} us CPU per request "
        f"(best of {rounds} rounds of {requests})"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(
        _main(
            args[0],
            int(args[1]) if len(args) > 1 else 3000,
            int(args[2]) if len(args) > 2 else 32,
            "--profile" in sys.argv,
            int(args[3]) if len(args) > 3 else 5,
        )
    )
