"""Where one digit classification's time goes inside the app: exclusive wall time per stage.

    python -m bench.hotpath [--quick] [--model lenet5-mnist] [--out DIR]

The app is called in-process with ASGI messages (``bench.inprocess``): no socket, no HTTP parser, no load
generator. Three measurements, interleaved round by round so that a busy host disturbs them alike:

- ``reference``: a plain ASGI callable that reads the body and answers a fixed JSON: the driver's floor;
- ``app``: the service untouched, at concurrency 1 and 32: wall and CPU per request;
- ``traced``: the service with every stage wrapped (``bench.stage_tracer``) at concurrency 1: exclusive
  wall time per stage (the middleware layers one by one, routing, auth, body read, multipart, decode,
  preprocess, batcher, onnxruntime, postprocess, JSON, response). The wrappers cost a little each; that
  cost is the traced total minus the untraced one, reported beside it.

Writes ``hotpath.json`` and ``hotpath.md`` (default ``bench/results/``; ``--quick``:
``bench/results/quick/``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench import payloads, suite
from bench.inprocess import asgi_scope, drive, model_ready
from bench.loadgen import Payload
from bench.provenance import run_metadata, save_results
from bench.stage_tracer import Stage, StageTracer

API = "poolserve.service.api"
RUNTIME = "poolserve.service.runtime"

# Outermost first; a stage's time excludes the traced stages it calls. Stages the code does not have
# (renamed, removed) are listed as missing in the results instead of failing the run.
STAGES = [
    Stage("app entry (FastAPI/Starlette __call__)", "fastapi.applications:FastAPI.__call__"),
    Stage("app entry (FastAPI/Starlette __call__)", "starlette.applications:Starlette.__call__"),
    Stage("middleware: ServerErrorMiddleware", "starlette.middleware.errors:ServerErrorMiddleware.__call__"),
    Stage("middleware: CORS", "starlette.middleware.cors:CORSMiddleware.__call__"),
    Stage("middleware: RequestGuard", f"{API}.middleware:RequestGuard.__call__"),
    Stage("middleware: RequestGuard", f"{API}.middleware:RequestGuard._bounded"),
    Stage("metrics: prometheus observe", "poolserve.service.metrics:ServiceMetrics.observe_request"),
    Stage("middleware: ExceptionMiddleware", "starlette.middleware.exceptions:ExceptionMiddleware.__call__"),
    Stage(
        "middleware: AsyncExitStack (FastAPI)",
        "fastapi.middleware.asyncexitstack:AsyncExitStackMiddleware.__call__",
    ),
    Stage("routing (match the path)", "fastapi.routing:APIRouter.app"),
    Stage("routing (match the path)", f"{API}.inference_endpoint:InferenceDispatch.__call__"),
    Stage("route handler + endpoint body", "fastapi.routing:APIRoute.handle"),
    Stage("route handler + endpoint body", "starlette.routing:Route.handle"),
    Stage("route handler + endpoint body", f"{API}.inference_endpoint:InferenceEndpoint.__call__"),
    Stage("auth (API key)", f"{API}.inference_endpoint:authorize"),
    Stage("model lookup", f"{API}.inference_endpoint:tagged_model"),
    Stage("query validation", f"{API}.inference_endpoint:parse_query"),
    Stage("model readiness / task", f"{RUNTIME}.registry:ModelEntry.serving"),
    Stage("model readiness / task", f"{RUNTIME}.registry:ServingModel.for_task"),
    Stage("body read", "starlette.requests:Request.body"),
    Stage("payload parse (content type, limits)", f"{API}.routes.classify:parse_classify"),
    Stage("multipart parse", f"{API}.multipart:boundary_of"),
    Stage("multipart parse", f"{API}.multipart:parse_form"),
    Stage("decode dispatch (inline or thread)", f"{API}.routes.classify:decode_images"),
    Stage("decode + preprocess glue", f"{API}.offload:decode_and_preprocess"),
    Stage("decode: open, read header", "poolserve.service.imaging.preprocess:open_image"),
    Stage("decode: pixels", "poolserve.service.imaging.preprocess:load_image"),
    Stage("preprocess", "poolserve.service.imaging.preprocess:preprocess_into"),
    Stage("runtime glue", f"{RUNTIME}.runtime:Runtime.classify"),
    Stage("watchdog guard", f"{RUNTIME}.watchdog:ModelGuard.run"),
    Stage("batcher submit / wait", f"{RUNTIME}.batcher:DynamicBatcher.submit"),
    Stage("batch handler (stack, split)", f"{RUNTIME}.batch_handlers:ClassificationHandler.run"),
    Stage("onnxruntime", "onnxruntime:InferenceSession.run"),
    Stage("postprocess: softmax", f"{RUNTIME}.runtime:probabilities"),
    Stage("postprocess: softmax", f"{RUNTIME}.batch_handlers:probabilities"),
    Stage("postprocess: top-k", f"{API}.routes.classify:top_k"),
    Stage("JSON encode", f"{API}.responses:OrjsonResponse.render"),
    Stage("response build", "starlette.responses:JSONResponse.__init__"),
    Stage("response send", "starlette.responses:Response.__call__"),
]
OUTSIDE = "outside every stage (driver, event loop, tracer)"

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def reference_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: read the body, answer a fixed JSON, nothing else."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


@asynccontextmanager
async def serving(model: str) -> AsyncIterator[App]:
    """The service built by its factory, lifespan entered, models loaded and ``model`` serving."""
    from poolserve.service.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        await model_ready(app, model)
        yield app


async def per_request(
    app: App, path: str, payload: Payload, requests: int, concurrency: int
) -> dict[str, float]:
    scope = asgi_scope(path, payload)
    wall, cpu = time.perf_counter(), time.process_time()
    await drive(app, scope, payload.body, requests, concurrency)
    return {
        "wall_us": 1e6 * (time.perf_counter() - wall) / requests,
        "cpu_us": 1e6 * (time.process_time() - cpu) / requests,
    }


def best(runs: list[dict[str, float]], by: str = "wall_us") -> dict[str, float]:
    """The fastest round: this kind of host's speed drifts by tens of percent between rounds."""
    return min(runs, key=lambda r: r[by])


async def measure(model: str, requests: int, rounds: int) -> dict[str, Any]:
    path = f"/v1/models/{model}/classify"
    untraced: dict[str, list[dict[str, float]]] = {"reference": [], "app c=1": [], "app c=32": []}
    traced_totals: list[dict[str, float]] = []
    tracer = StageTracer()
    stage_wall: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}
    calls: dict[str, int] = {}
    payload = payloads.classify_payload(payloads.digit_png(), "image/png")  # loads MNIST: once
    async with serving(model) as app:
        # Wrappers patch classes, so they are installed only around the traced runs; the traced app is
        # built under them because its router binds its routing method when it is built.
        with tracer.install(STAGES):
            traced_app_context = serving(model)
            traced_app = await traced_app_context.__aenter__()
        try:
            await drive(app, asgi_scope(path, payload), payload.body, 200, 32)  # warm-up
            for _ in range(rounds):
                untraced["reference"].append(await per_request(reference_app, path, payload, requests, 1))
                untraced["app c=1"].append(await per_request(app, path, payload, requests, 1))
                untraced["app c=32"].append(await per_request(app, path, payload, requests, 32))
                with tracer.install(STAGES):
                    await drive(traced_app, asgi_scope(path, payload), payload.body, 50, 1)  # warm-up
                    tracer.reset()
                    total = await per_request(traced_app, path, payload, requests, 1)
                if not traced_totals or total["cpu_us"] < best(traced_totals, "cpu_us")["cpu_us"]:
                    stage_wall, stage_cpu, calls = dict(tracer.wall), dict(tracer.cpu), dict(tracer.calls)
                traced_totals.append(total)
        finally:
            await traced_app_context.__aexit__(None, None, None)
    traced = best(traced_totals, "cpu_us")
    stages: list[dict[str, Any]] = [
        {
            "stage": label,
            "wall_us": 1e6 * stage_wall[label] / requests,
            "cpu_us": 1e6 * stage_cpu[label] / requests,
            "calls_per_request": calls[label] / requests,
        }
        for label in calls
    ]
    stages.append(
        {
            "stage": OUTSIDE,
            "wall_us": traced["wall_us"] - sum(s["wall_us"] for s in stages),
            "cpu_us": traced["cpu_us"] - sum(s["cpu_us"] for s in stages),
            "calls_per_request": 0,
        }
    )
    return {
        "model": model,
        "requests_per_round": requests,
        "rounds": rounds,
        "per_request": {name: best(runs) for name, runs in untraced.items()} | {"traced c=1": traced},
        "stages": stages,
        "missing_stages": sorted(set(tracer.missing)),
    }


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# Hot path: {results['model']}, one digit PNG per request, in-process",
        "",
        f"`python -m bench.hotpath{' --quick' if results['quick'] else ''}` at commit `{meta['git_commit']}`,"
        f" {meta['cpu']}, {meta['cores']} cores, load average {meta['load_before']:.2f} before and"
        f" {meta['load_after']:.2f} after; best of {results['rounds']} interleaved rounds of"
        f" {results['requests_per_round']} requests.",
        "",
        "| run | µs wall per request | µs CPU per request | req/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, figures in results["per_request"].items():
        wall, cpu = figures["wall_us"], figures["cpu_us"]
        lines.append(f"| {name} | {wall:.0f} | {cpu:.0f} | {1e6 / wall:.0f} |")
    traced = results["per_request"]["traced c=1"]["cpu_us"]
    lines += [
        "",
        "Exclusive time per stage at concurrency 1 (the traced run; each stage without the traced stages it"
        " calls), in the order a request enters them; the share is of CPU time:",
        "",
        "| stage | µs CPU per request | µs wall per request | share | calls per request |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for stage in results["stages"]:
        lines.append(
            f"| {stage['stage']} | {stage['cpu_us']:.1f} | {stage['wall_us']:.1f} |"
            f" {100 * stage['cpu_us'] / traced:.0f} % | {stage['calls_per_request']:g} |"
        )
    if results["missing_stages"]:
        lines += [
            "",
            "Not in this code (not traced): " + ", ".join(f"`{m}`" for m in results["missing_stages"]),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath")
    parser.add_argument("--quick", action="store_true", help="200 requests x 2 rounds (default 1000 x 5)")
    parser.add_argument("--model", default="lenet5-mnist")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("POOLSERVE_REPOSITORY", str(suite.ROOT / "model_repository"))
    os.environ.setdefault("POOLSERVE_INTRA_OP_THREADS", "1")
    os.environ.setdefault("POOLSERVE_INTER_OP_THREADS", "1")
    os.environ.setdefault("POOLSERVE_LOG_LEVEL", "warning")
    requests, rounds = (200, 2) if args.quick else (1000, 5)
    meta = run_metadata() | {"load_before": os.getloadavg()[0]}
    results = asyncio.run(measure(args.model, requests, rounds))
    meta["load_after"] = os.getloadavg()[0]
    results = {"meta": meta, "quick": args.quick} | results
    save_results("hotpath", results, markdown(results), args.out, args.quick)


if __name__ == "__main__":
    main()
