"""What the benchmark starts: one ``TargetSpec`` per server kind, each knowing its command line, its
environment and the URL that classifies one upload. Peers run from ``.bench-venvs/<peer>``."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench-venvs"
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS = ("litserve", "bentoml", "torchserve", "ray")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    url: str
    ready_timeout_s: float = 60.0


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: str  # "poolserve" | "baseline" | "peer"
    launch: Callable[[Path, Path, str], Launch]  # (entry dir, scratch dir, model name) -> Launch


def _uvicorn(app: str, port: int) -> list[str]:
    # Same uvicorn and options for poolserve, the bare endpoint and the naive service.
    return [
        str(MAIN_PYTHON),
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _poolserve(entry: Path, scratch: Path, name: str) -> Launch:
    port = free_port()
    env = {
        "POOLSERVE_REPOSITORY": str(entry.parent.parent),
        "POOLSERVE_INTRA_OP_THREADS": "1",
        "POOLSERVE_INTER_OP_THREADS": "1",
        "POOLSERVE_LOG_LEVEL": "warning",
    }
    return Launch(
        _uvicorn("poolserve.service.app:create_app", port),
        env,
        f"http://127.0.0.1:{port}/v1/models/{name}/classify",
    )


def _baseline(module: str) -> Callable[[Path, Path, str], Launch]:
    def launch(entry: Path, scratch: Path, name: str) -> Launch:
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1/models/{name}/classify"
        return Launch(_uvicorn(f"bench.targets.{module}:create_app", port), {"BENCH_ENTRY": str(entry)}, url)

    return launch


def _peer_env(entry: Path, port: int) -> dict[str, str]:
    return {"BENCH_ENTRY": str(entry), "BENCH_PORT": str(port), "PYTHONPATH": str(ROOT)}


def _litserve(entry: Path, scratch: Path, name: str) -> Launch:
    port = free_port()
    argv = [str(VENVS / "litserve/bin/python"), "-m", "bench.targets.peers.litserve_app"]
    return Launch(argv, _peer_env(entry, port), f"http://127.0.0.1:{port}/predict")


def _bentoml(entry: Path, scratch: Path, name: str) -> Launch:
    port = free_port()
    argv = [
        str(VENVS / "bentoml/bin/bentoml"),
        "serve",
        "bench.targets.peers.bentoml_service:OnnxClassifier",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**_peer_env(entry, port), "BENTOML_CONFIG_OPTIONS": "api_server.logging.access.enabled=false"}
    return Launch(argv, env, f"http://127.0.0.1:{port}/classify", ready_timeout_s=90)


def _torchserve(entry: Path, scratch: Path, name: str) -> Launch:
    import json

    from bench.targets.common import load_served_model

    served = load_served_model(entry)
    store = scratch / "torchserve-store"
    store.mkdir(parents=True, exist_ok=True)
    bin_dir = VENVS / "torchserve/bin"
    subprocess.run(
        [
            str(bin_dir / "torch-model-archiver"),
            "--model-name",
            "m",
            "--version",
            "1.0",
            "--handler",
            str(ROOT / "bench/targets/peers/torchserve_handler.py"),
            "--export-path",
            str(store),
            "--force",
        ],
        check=True,
    )
    ports = [free_port() for _ in range(3)]
    model = {
        "defaultVersion": True,
        "marName": "m.mar",
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": served.max_batch_size,
        "maxBatchDelay": max(1, round(served.max_queue_delay_ms)),
        "responseTimeout": 120,
    }
    config = scratch / "torchserve.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{ports[0]}\nmanagement_address=http://127.0.0.1:{ports[1]}\n"
        f"metrics_address=http://127.0.0.1:{ports[2]}\nmodel_store={store}\n"
        "disable_token_authorization=true\ninstall_py_dep_per_model=false\ndefault_workers_per_model=1\n"
        f"models={json.dumps({'m': {'1.0': model}})}\nload_models=m.mar\n"
    )
    argv = [str(bin_dir / "torchserve"), "--start", "--foreground", "--ncs", "--ts-config", str(config)]
    env = {**_peer_env(entry, ports[0]), "PATH": f"{bin_dir}:/usr/bin:/bin", "JAVA_TOOL_OPTIONS": ""}
    return Launch(argv, env, f"http://127.0.0.1:{ports[0]}/predictions/m", ready_timeout_s=120)


def _ray(entry: Path, scratch: Path, name: str) -> Launch:
    port = free_port()
    argv = [str(VENVS / "ray/bin/python"), "-m", "bench.targets.peers.ray_app"]
    return Launch(argv, _peer_env(entry, port), f"http://127.0.0.1:{port}/predict", ready_timeout_s=150)


def _poolserve_no_window(entry: Path, scratch: Path, name: str) -> Launch:
    launch = _poolserve(entry, scratch, name)
    return Launch(launch.argv, {**launch.env, "POOLSERVE_MAX_QUEUE_DELAY_MS": "0"}, launch.url)


POOLSERVE = TargetSpec("poolserve", "poolserve", _poolserve)
# The same service with a settings override (no code change): no batching window, so a batch is
# whatever queued while the previous one ran. Reported beside the default, never instead of it.
POOLSERVE_NO_WINDOW = TargetSpec("poolserve-delay0", "poolserve-variant", _poolserve_no_window)
BARE = TargetSpec("bare-endpoint", "baseline", _baseline("bare"))
NAIVE = TargetSpec("naive-torch", "baseline", _baseline("naive_torch"))
PEER_SPECS = {
    "litserve": TargetSpec("litserve", "peer", _litserve),
    "bentoml": TargetSpec("bentoml", "peer", _bentoml),
    "torchserve": TargetSpec("torchserve", "peer", _torchserve),
    "ray": TargetSpec("ray-serve", "peer", _ray),
}
