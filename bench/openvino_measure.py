"""The measuring half of ``bench.openvino``: runs inside a virtualenv whose ``onnxruntime`` may be
onnxruntime-openvino, so it imports nothing but numpy, onnxruntime and the standard library.

    <venv>/bin/python -m bench.openvino_measure PLAN.json RESULT.json

The plan names the cores to pin to, the thread count, the execution-provider configurations, and per
model its ONNX file and one ``.npz`` of inputs per batch size. For each model every configuration gets
one session; the configurations are timed in alternating rounds (A B C A B C) and the median round
counts. Outputs are compared with the first configuration's, and a profiled run says which provider
ran each node.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ProviderSpec = list[str | tuple[str, dict[str, str]]]


def _providers(config: dict[str, Any]) -> ProviderSpec:
    """``{"provider": name, "options": {...}}`` -> onnxruntime's ``providers=``, CPU always last so
    nodes the first provider lacks still run."""
    name, options = config["provider"], config.get("options", {})
    if name == "CPUExecutionProvider":
        return [name]
    return [(name, {k: str(v) for k, v in options.items()}), "CPUExecutionProvider"]


def _session(model: Path, config: dict[str, Any], threads: int, profile: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = profile
    # Profiles go to the temporary directory (read, then deleted), never into the working tree.
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "openvino_measure_profile")
    return ort.InferenceSession(str(model), options, providers=_providers(config))


def _ms_per_run(session: Any, feed: dict[str, np.ndarray], seconds: float) -> float:
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 2:
        session.run(None, feed)
        runs += 1
    return elapsed / runs * 1e3


def placement(
    model: Path, config: dict[str, Any], threads: int, feed: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Node names per provider from onnxruntime's profiler. A provider that compiles subgraphs (OpenVINO)
    shows each as one fused node (``OpenVINO-EP-subgraph_N``); nodes it left to the CPU appear by op type."""
    session = _session(model, config, threads, profile=True)
    session.run(None, feed)
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    nodes: dict[str, set[str]] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            args = event["args"]
            nodes.setdefault(args["provider"], set()).add(args["op_name"])
    return {"session_providers": session.get_providers(), "ops": {p: sorted(o) for p, o in nodes.items()}}


def measure_model(model: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    path, threads, configs = Path(model["path"]), plan["threads"], plan["configs"]
    feeds = {int(b): dict(np.load(f)) for b, f in model["feeds"].items()}
    sessions, create_s = {}, {}
    for label, config in configs.items():
        start = time.perf_counter()
        sessions[label] = _session(path, config, threads)
        create_s[label] = time.perf_counter() - start
    reference = next(iter(configs))
    max_abs_diff: dict[str, float] = {label: 0.0 for label in configs}
    for feed in feeds.values():
        outputs = {label: session.run(None, feed) for label, session in sessions.items()}  # also warms up
        for label, got in outputs.items():
            for a, b in zip(got, outputs[reference], strict=True):
                diff = float(np.abs(a - b).max()) if a.size else 0.0
                max_abs_diff[label] = max(max_abs_diff[label], diff)
    samples: dict[str, dict[int, list[float]]] = {label: {b: [] for b in feeds} for label in configs}
    for _ in range(plan["rounds"]):
        for batch, feed in feeds.items():
            for label, session in sessions.items():
                samples[label][batch].append(_ms_per_run(session, feed, plan["seconds"]))
    smallest = feeds[min(feeds)]
    return {
        "ms_per_batch": {
            label: {str(b): statistics.median(v) for b, v in per.items()} for label, per in samples.items()
        },
        "max_abs_diff": max_abs_diff,
        "session_create_s": create_s,
        "placement": {label: placement(path, configs[label], threads, smallest) for label in configs},
    }


def main() -> None:
    plan_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    plan = json.loads(plan_path.read_text())
    # Pin before onnxruntime starts a thread: every pool it (or OpenVINO) creates inherits the mask.
    os.sched_setaffinity(0, set(plan["cores"]))
    import onnxruntime as ort

    results = {name: measure_model(model, plan) for name, model in plan["models"].items()}
    result_path.write_text(
        json.dumps(
            {
                "onnxruntime": ort.__version__,
                "available_providers": ort.get_available_providers(),
                "cores": plan["cores"],
                "threads": plan["threads"],
                "models": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
