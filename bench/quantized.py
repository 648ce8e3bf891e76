"""int8 and fp16 against float32: raw onnxruntime session throughput and accuracy, and the decision rule.

    python -m bench.quantized            # writes bench/results/quantized.{json,md}
    python -m bench.quantized --quick    # one round, short runs, lenet5-mnist only (the CI smoke path)

Each graph gets one CPU session with one intra-op thread (as ``bench.raw_ort``), the variants of a model are
measured in alternating rounds at batch 1 and 32, and the median round counts. Variants of the shipped
digit models come from ``poolserve export --quantize`` into a scratch repository (int8 calibrated on
training-split images, accuracy on the held-out split); the ResNet-size benchmark model has random
weights, so it is calibrated on seeded random images and only its speed and parity mean anything.

A variant ships by default only where it is at least ``SHIP_SPEEDUP`` times faster than float32 at both
batch sizes and loses at most ``SHIP_MAX_LOSS`` accuracy points on held-out data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from poolserve.export.parity import InputCase
from poolserve.export.quantize import quantize
from poolserve.export.quantize_shipped import canvas_cases, digit_cases, quantize_shipped
from poolserve.export.quantized_entry import measure_parity
from poolserve.models.evaluation_sets import held_out_canvases
from poolserve.models.mnist import held_out_split
from poolserve.repository.manifest import QuantizationMode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DIGIT_MODELS = ("lenet5-mnist", "digits-roialign", "digits-roipool")
MODES: tuple[QuantizationMode, ...] = ("int8", "fp16")
BATCH_SIZES = (1, 32)
SHIP_SPEEDUP = 1.5
SHIP_MAX_LOSS = 0.005  # 0.5 accuracy points
HIGH_LOAD = 1.5  # 1-minute load average per core above which the host counts as shared


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float  # per measurement; at least 2 runs are timed whatever this says
    models: tuple[str, ...]
    resnet: bool


FULL = Plan(rounds=5, seconds=1.0, models=DIGIT_MODELS, resnet=True)
QUICK = Plan(rounds=1, seconds=0.05, models=("lenet5-mnist",), resnet=False)


def _session(proto: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _images_per_s(session: ort.InferenceSession, feed: InputCase, seconds: float) -> float:
    session.run(None, feed)  # first-run allocations
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 2:
        session.run(None, feed)
        runs += 1
    return runs * len(feed["images"]) / elapsed


def _throughput(
    graphs: dict[str, onnx.ModelProto], feeds: dict[int, InputCase], plan: Plan
) -> dict[str, dict[int, float]]:
    """Median images/s per graph and batch size over alternating rounds (graphs interleaved per round)."""
    sessions = {label: _session(proto) for label, proto in graphs.items()}
    samples: dict[str, dict[int, list[float]]] = {label: {b: [] for b in feeds} for label in sessions}
    for _ in range(plan.rounds):
        for batch, feed in feeds.items():
            for label, session in sessions.items():
                samples[label][batch].append(_images_per_s(session, feed, plan.seconds))
    return {label: {b: statistics.median(v) for b, v in per.items()} for label, per in samples.items()}


def _digit_model(name: str, scratch: Path, plan: Plan) -> dict[str, object]:
    splits = held_out_split()
    classification = name.startswith("lenet")
    if classification:
        cases = digit_cases(splits.test)
        feeds = {b: {"images": cases[0]["images"][:b]} for b in BATCH_SIZES}
    else:
        canvases = held_out_canvases(splits.test)
        feeds = {b: canvas_cases(canvases[:b])[0] for b in BATCH_SIZES}
    graphs = {"float32": onnx.load(ROOT / "model_repository" / name / "1" / "model.onnx")}
    variants: dict[str, dict[str, object]] = {}
    for mode in MODES:
        entry = quantize_shipped(name, mode, scratch)
        graphs[mode] = onnx.load(scratch / f"{name}-{mode}" / "1" / "model.onnx")
        variants[mode] = {
            "accuracy": entry.accuracy.value,
            "float32_accuracy": entry.float32_accuracy,
            "accuracy_delta_points": round(100 * (entry.accuracy.value - entry.float32_accuracy), 2),
            "samples": entry.accuracy.samples,
            "top1_agreement": entry.parity.top1_agreement,
            "max_abs_error": entry.parity.max_abs_error,
        }
    return {"metric": "held-out accuracy", "throughput": _throughput(graphs, feeds, plan), **variants}


def _resnet(scratch: Path, plan: Plan) -> dict[str, object]:
    from bench.resnet import IMAGE_SIZE, write_entry

    reference = onnx.load(write_entry(scratch) / "model.onnx")
    rng = np.random.default_rng(0)

    def images(count: int) -> np.ndarray:
        return rng.standard_normal((count, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)

    calibration: list[InputCase] = [{"images": images(8)} for _ in range(4)]
    compared: list[InputCase] = [{"images": images(8)} for _ in range(2)]
    graphs = {"float32": reference}
    variants: dict[str, dict[str, object]] = {}
    for mode in MODES:
        graph = quantize(reference, mode, calibration)
        graphs[mode] = graph.proto
        parity = measure_parity(reference, graph.proto, compared, mode, "logits")
        variants[mode] = {"top1_agreement": parity.top1_agreement, "max_abs_error": parity.max_abs_error}
    feeds = {b: {"images": images(b)} for b in BATCH_SIZES}
    return {
        "metric": "none (random weights): agreement on seeded random images",
        "throughput": _throughput(graphs, feeds, plan),
        **variants,
    }


def _verdict(model: dict[str, object], mode: str) -> dict[str, object]:
    throughput = model["throughput"]
    assert isinstance(throughput, dict)
    speedups = {b: throughput[mode][b] / throughput["float32"][b] for b in BATCH_SIZES}
    variant = model[mode]
    assert isinstance(variant, dict)
    loss = variant.get("accuracy_delta_points")
    fast = min(speedups.values()) >= SHIP_SPEEDUP
    accurate = loss is not None and -loss <= 100 * SHIP_MAX_LOSS
    return {"speedup": {b: round(s, 3) for b, s in speedups.items()}, "ships": fast and accurate}


def _host() -> dict[str, object]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT)
    load = os.getloadavg()
    cores = os.cpu_count() or 1
    return {
        "commit": commit.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else ""),
        "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": cores,
        "load_average": [round(v, 2) for v in load],
        "shared_host": load[0] / cores > HIGH_LOAD,
    }


def run(plan: Plan) -> dict[str, object]:
    started = _host()
    models: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        repository = Path(scratch)
        for name in plan.models:
            (repository / name).symlink_to(ROOT / "model_repository" / name)
            models[name] = _digit_model(name, repository, plan)
        if plan.resnet:
            models["resnet18-gap"] = _resnet(repository, plan)
    for model in models.values():
        for mode in MODES:
            variant = model[mode]
            assert isinstance(variant, dict)
            variant.update(_verdict(model, mode))
    return {
        "host": started,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "plan": asdict(plan),
        "rule": f">= {SHIP_SPEEDUP}x float32 images/s at batch 1 and 32, "
        f"<= {100 * SHIP_MAX_LOSS} accuracy points lost",
        "models": models,
    }


def markdown(results: dict[str, object]) -> str:
    host = results["host"]
    assert isinstance(host, dict)
    lines = [
        "# int8 and fp16 against float32 (raw onnxruntime, CPU, one intra-op thread)\n",
        f"Commit {host['commit']}, onnxruntime {host['onnxruntime']}, {host['cores']} cores; load average "
        f"{host['load_average']} before, {results['load_average_after']} after"
        + (
            " — **shared host: absolute figures are low, compare ratios only**."
            if host["shared_host"]
            else "."
        ),
        f"Median of {results['plan']['rounds']} alternating rounds. Rule: {results['rule']}.\n",  # type: ignore[index]
        "| model | variant | img/s b=1 | img/s b=32 | speedup b=1 | speedup b=32 | accuracy (float32) "
        "| top-1 agreement | max abs error | ships |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    models = results["models"]
    assert isinstance(models, dict)
    for name, model in models.items():
        throughput = model["throughput"]
        lines.append(
            f"| {name} | float32 | {throughput['float32'][1]:.0f} | {throughput['float32'][32]:.0f} "
            "| 1.00 | 1.00 | | | | |"
        )
        for mode in MODES:
            v = model[mode]
            accuracy = (
                f"{v['accuracy']:.4f} ({v['float32_accuracy']:.4f}, {v['accuracy_delta_points']:+.1f} pt)"
                if "accuracy" in v
                else "n/a (random weights)"
            )
            lines.append(
                f"| {name} | {mode} | {throughput[mode][1]:.0f} | {throughput[mode][32]:.0f} "
                f"| {v['speedup'][1]:.2f} | {v['speedup'][32]:.2f} | {accuracy} | {v['top1_agreement']:.4f} "
                f"| {v['max_abs_error']:.3g} | {'yes' if v['ships'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quantized", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round on lenet5-mnist")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for quantized.{json,md}")
    args = parser.parse_args()
    results = run(QUICK if args.quick else FULL)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quantized.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "quantized.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
