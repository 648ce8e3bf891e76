"""Raw onnxruntime against poolserve on one execution provider, and the RoI ops there.

    python -m bench.gpu --provider cuda --out bench/results/gpu     # what bench/gpu.sh runs on a GPU
    python -m bench.gpu --provider cpu --quick --out /tmp/gpu-check # the CPU path the tests exercise

Raw: one session (all cores, as the service's default), images/s per batch size, with host arrays
(copies included, as poolserve must do) and with I/O binding (input already on the device, output left
there: the ceiling). poolserve: the real service under uvicorn on that provider (strict: no silent CPU
fallback), a closed loop of JPEG uploads at each concurrency. The ratio is poolserve's best images/s over
raw onnxruntime's best with host arrays. Full runs use the ResNet-size benchmark model; ``--quick`` uses
the shipped lenet5-mnist so the check takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench import gpu_roi
from bench.gpu_load import LoadResult, run_load
from bench.loadgen import multipart

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = {"cuda": gpu_roi.CUDA, "cpu": gpu_roi.CPU}


@dataclass(frozen=True)
class Plan:
    model: str
    batch_sizes: tuple[int, ...]
    concurrency: tuple[int, ...]
    load_seconds: float
    raw_seconds: float
    roi_shape: gpu_roi.RoIShape
    roi_repeats: int
    client_processes: int


FULL = Plan("resnet18-gap", (1, 8, 32, 64, 128), (1, 8, 32, 64, 128), 8.0, 2.0, gpu_roi.FULL, 50, 6)
QUICK = Plan("lenet5-mnist", (1, 8), (1, 4), 1.0, 0.2, gpu_roi.QUICK, 3, 2)


def _entry(plan: Plan, scratch: Path) -> Path:
    """The model's repository entry: generated for the ResNet (random weights), shipped for lenet."""
    if plan.model == "resnet18-gap":
        from bench.resnet import write_entry

        return write_entry(scratch / "repository")
    return ROOT / "model_repository" / plan.model / "1"


def _session(model: Path, provider: str) -> ort.InferenceSession:
    providers = [provider, gpu_roi.CPU] if provider != gpu_roi.CPU else [gpu_roi.CPU]
    session = ort.InferenceSession(str(model), providers=providers)
    if session.get_providers()[0] != provider:
        raise RuntimeError(f"onnxruntime placed the session on {session.get_providers()}, not {provider}")
    return session


def _images_per_s(run: object, batch: int, seconds: float) -> float:
    assert callable(run)
    run()
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 3:
        run()
        runs += 1
    return runs * batch / elapsed


def raw_throughput(model: Path, provider: str, plan: Plan) -> dict[str, dict[int, float]]:
    session = _session(model, provider)
    shape = [int(d) for d in session.get_inputs()[0].shape[1:]]
    name, output = session.get_inputs()[0].name, session.get_outputs()[0].name
    device = "cuda" if provider == gpu_roi.CUDA else "cpu"
    rng = np.random.default_rng(0)
    host: dict[int, float] = {}
    bound: dict[int, float] = {}
    for batch in plan.batch_sizes:
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        host[batch] = _images_per_s(lambda: session.run([output], {name: x}), batch, plan.raw_seconds)  # noqa: B023
        binding = session.io_binding()
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, device, 0))
        binding.bind_output(output, device)

        def bound_run(binding: ort.IOBinding = binding) -> None:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        bound[batch] = _images_per_s(bound_run, batch, plan.raw_seconds)
    return {"host_arrays": host, "io_binding": bound}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(server: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"poolserve exited during start-up with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"poolserve was not ready after {timeout_s:.0f} s")


def _payload(plan: Plan) -> tuple[bytes, str]:
    if plan.model == "resnet18-gap":
        from bench.payloads import photo_jpeg

        image, kind, filename = photo_jpeg(224), "image/jpeg", "photo.jpg"
    else:
        image, kind, filename = (ROOT / "tests/data/digits/0_0.png").read_bytes(), "image/png", "digit.png"
    payload = multipart([("images", filename, image, kind)])
    return payload.body, payload.content_type


def serve_throughput(entry: Path, provider: str, plan: Plan, log: Path) -> list[LoadResult]:
    """The real service on ``provider`` under a closed loop at each concurrency; stopped whatever happens."""
    port = _free_port()
    env = {
        **os.environ,
        "POOLSERVE_REPOSITORY": str(entry.parent.parent),
        "POOLSERVE_EXECUTION_PROVIDER": "cuda" if provider == gpu_roi.CUDA else "cpu",
        "POOLSERVE_STRICT_PROVIDER": "true",
        "POOLSERVE_LOG_LEVEL": "warning",
    }
    argv = [sys.executable, "-m", "uvicorn", "poolserve.service.app:create_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    body, content_type = _payload(plan)
    url = f"http://127.0.0.1:{port}/v1/models/{plan.model}/classify"
    with log.open("wb") as output:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_ready(server, port, 120)
            run_load(url, body, content_type, 2, min(plan.load_seconds, 2.0), 1)  # warm-up
            return [
                run_load(url, body, content_type, c, plan.load_seconds, plan.client_processes)
                for c in plan.concurrency
            ]
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def run(provider_name: str, plan: Plan, out: Path, commit: str) -> dict[str, object]:
    provider = PROVIDERS[provider_name]
    available = ort.get_available_providers()
    if provider not in available:
        raise SystemExit(
            f"bench.gpu: {provider} is not available in onnxruntime {ort.__version__}: {available}"
        )
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {
        "commit": commit,
        "onnxruntime": ort.__version__,
        "available_providers": available,
        "provider": provider,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "cores": os.cpu_count(),
        "plan": asdict(plan),
    }
    results["roi"] = gpu_roi.measure(provider, plan.roi_shape, plan.roi_repeats)
    with tempfile.TemporaryDirectory() as scratch:
        entry = _entry(plan, Path(scratch))
        raw = raw_throughput(entry / "model.onnx", provider, plan)
        served = serve_throughput(entry, provider, plan, out / "poolserve.log")
    raw_best = max(raw["host_arrays"].values())
    serve_best = max(r.requests_per_s for r in served)  # one image per request
    results["raw"] = raw
    results["poolserve"] = [asdict(r) for r in served]
    results["poolserve_over_raw"] = round(serve_best / raw_best, 3)
    results["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    (out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "gpu.md").write_text(markdown(results))
    return results


def markdown(results: dict[str, object]) -> str:
    raw = results["raw"]
    roi = results["roi"]
    assert isinstance(raw, dict) and isinstance(roi, dict)
    lines = [
        f"# poolserve vs raw onnxruntime on {results['provider']}\n",
        f"Commit {results['commit']}, onnxruntime {results['onnxruntime']}, {results['cores']} cores, load "
        f"average {results['load_average']} before and {results['load_average_after']} after.\n",
        "| batch | raw img/s, host arrays | raw img/s, I/O binding |",
        "| ---: | ---: | ---: |",
    ]
    lines += [f"| {b} | {v:.0f} | {raw['io_binding'][b]:.0f} |" for b, v in raw["host_arrays"].items()]
    lines += [
        "",
        "| concurrency | poolserve img/s | p50 ms | p99 ms | errors |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["poolserve"]:  # type: ignore[attr-defined]
        lines.append(
            f"| {r['concurrency']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['errors']} |"
        )
    lines += ["", f"poolserve / raw (host arrays), best of each: **{results['poolserve_over_raw']}**\n"]
    lines += ["| RoI op | nodes by provider | ms, host arrays | ms, I/O binding | max abs diff vs CPU |"]
    lines += ["| --- | --- | ---: | ---: | ---: |"]
    for op, r in roi["ops"].items():
        lines.append(
            f"| {op} | {r['nodes_by_provider']} | {r['ms_host_arrays']:.3f} | {r['ms_io_binding']:.3f} "
            f"| {r['max_abs_diff_vs_cpu']:.2g} |"
        )
    lines.append(
        f"\nShape {roi['shape']}; the rewrite equals the CPU kernel bit for bit: "
        f"{roi['rewrite_equals_kernel']}."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="cuda")
    parser.add_argument("--quick", action="store_true", help="lenet5-mnist, tiny RoI shapes, 1 s loads")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu")
    parser.add_argument("--commit", default=os.environ.get("BENCH_COMMIT", "unknown"))
    args = parser.parse_args()
    results = run(args.provider, QUICK if args.quick else FULL, args.out, args.commit)
    print(markdown(results))


if __name__ == "__main__":
    main()
