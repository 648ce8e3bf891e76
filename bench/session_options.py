"""Why poolserve's onnxruntime session options are what they are: each option against its alternatives,
in-process, one intra-op thread unless the option is the thread count, best of alternating rounds.

    taskset -c 0 python -m bench.session_options > bench/results/session_options.md

Models: the shipped lenet5-mnist (batch 32, the batches it sees under load) and the benchmark's
resnet18-gap (batch 8; ``python -m bench run`` generates it into ``.bench-repository/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.provenance import run_metadata
from bench.targets.common import load_served_model

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "lenet5-mnist": (ROOT / "model_repository/lenet5-mnist/1", 32),
    "resnet18-gap": (ROOT / ".bench-repository/resnet18-gap/1", 8),
}
ROUNDS = 3
SECONDS = 1.5

Tweak = Callable[[ort.SessionOptions], None]


def _set(attribute: str, value: object) -> Tweak:
    def tweak(options: ort.SessionOptions) -> None:
        setattr(options, attribute, value)

    return tweak


def _parallel(options: ort.SessionOptions) -> None:
    options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    options.inter_op_num_threads = 2


# poolserve's choice first in each group (service/runtime/sessions.py), then the alternatives.
LEVEL = ort.GraphOptimizationLevel
GROUPS: dict[str, list[tuple[str, Tweak]]] = {
    "graph optimization level": [
        ("ORT_ENABLE_ALL (poolserve)", _set("graph_optimization_level", LEVEL.ORT_ENABLE_ALL)),
        ("ORT_ENABLE_EXTENDED", _set("graph_optimization_level", LEVEL.ORT_ENABLE_EXTENDED)),
        ("ORT_ENABLE_BASIC", _set("graph_optimization_level", LEVEL.ORT_ENABLE_BASIC)),
        ("ORT_DISABLE_ALL", _set("graph_optimization_level", LEVEL.ORT_DISABLE_ALL)),
    ],
    "execution mode": [
        ("ORT_SEQUENTIAL (poolserve)", _set("execution_mode", ort.ExecutionMode.ORT_SEQUENTIAL)),
        ("ORT_PARALLEL, 2 inter-op threads", _parallel),
    ],
    "CPU memory arena": [
        ("on (poolserve, onnxruntime's default)", _set("enable_cpu_mem_arena", True)),
        ("off", _set("enable_cpu_mem_arena", False)),
    ],
    "memory pattern": [
        ("on (poolserve, onnxruntime's default)", _set("enable_mem_pattern", True)),
        ("off", _set("enable_mem_pattern", False)),
    ],
}  # fmt: skip


def _session(path: Path, tweak: Tweak) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    tweak(options)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _images_per_s(session: ort.InferenceSession, feed: dict[str, np.ndarray], batch: int) -> float:
    session.run(None, feed)
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS or runs < 3:
        session.run(None, feed)
        runs += 1
    return runs * batch / elapsed


def main() -> None:
    meta = run_metadata()
    print("# onnxruntime session options, measured\n")
    print(f"Run {meta['started']} at commit `{meta['git_commit']}` on {meta['cpu']}.\n")
    print(f"onnxruntime {ort.__version__}, CPU provider, one intra-op thread, best of {ROUNDS} alternating")
    print(f"rounds of {SECONDS} s each; images/s (higher is better) and the ratio to poolserve's choice.\n")
    for model, (entry, batch) in MODELS.items():
        if not entry.is_dir():
            print(f"({model}: {entry} missing; `python -m bench run --models resnet` generates it)\n")
            continue
        served = load_served_model(entry)
        spec = served.manifest["preprocessing"]
        channels = 1 if spec["color_mode"] == "L" else 3
        x = np.random.default_rng(0).standard_normal((batch, channels, spec["height"], spec["width"]))
        feed = {served.input_name: x.astype(np.float32)}
        print(f"## {model}, batch {batch}\n")
        print("| option | value | images/s | ratio |\n| --- | --- | ---: | ---: |")
        for group, choices in GROUPS.items():
            sessions = [(label, _session(served.model_path, tweak)) for label, tweak in choices]
            best = {label: 0.0 for label, _ in sessions}
            for _ in range(ROUNDS):
                for label, session in sessions:
                    best[label] = max(best[label], _images_per_s(session, feed, batch))
            reference = best[sessions[0][0]]
            for label, _ in sessions:
                print(f"| {group} | {label} | {best[label]:.0f} | {best[label] / reference:.2f} |")
        print()


if __name__ == "__main__":
    main()
