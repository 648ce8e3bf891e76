"""OpenVINO's CPU kernels (onnxruntime-openvino) against onnxruntime's default CPU execution provider.

    python -m bench.openvino            # writes bench/results/openvino.{json,md}
    python -m bench.openvino --quick    # two digit region models, batch 1 and 8, one core, one round
    python -m bench.openvino --report bench/results/openvino.json   # only redraw openvino.md

onnxruntime-openvino ships its own ``onnxruntime`` module, so the timing runs in ``.bench-venvs/openvino``
(``python -m bench setup`` builds it) as a child process, ``bench.openvino_measure``; this process only
prepares the inputs and writes the report. Per core set (one core, then two), the child is pinned to
those cores and every configuration gets as many threads as cores: the CPU provider, OpenVINO with its
default precision, and OpenVINO with ``precision=FP32``. The same child also runs under this
virtualenv's onnxruntime (the build poolserve ships), CPU provider only; rounds alternate between the
two virtualenvs and, inside the OpenVINO one, between configurations, and the median round counts.
Parity is the largest absolute difference from the CPU provider's outputs in the same process;
placement comes from onnxruntime's profiler. The verdict rule is ``bench.openvino_report.RULE``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.openvino_report import RULE, markdown, verdicts
from bench.provenance import ROOT, run_metadata, save_results
from bench.suite import VENVS
from poolserve.repository.manifest import Manifest

BENCH_REPOSITORY = ROOT / ".bench-repository"
RESNET = "resnet18-gap"
REGION_MODELS = ("digits-roialign", "digits-roipool", "mtcnn-onet-regions")
CONFIGS: dict[str, dict[str, Any]] = {
    "cpu": {"provider": "CPUExecutionProvider"},
    "openvino": {"provider": "OpenVINOExecutionProvider", "options": {"device_type": "CPU"}},
    "openvino-fp32": {
        "provider": "OpenVINOExecutionProvider",
        "options": {"device_type": "CPU", "precision": "FP32"},
    },
}
FACE_WINDOW = 128  # px: mtcnn-onet-regions gets a grid of face-sized windows, 16 per 512 px image
SEED = 0


@dataclass(frozen=True)
class Plan:
    name: str  # "full" or "quick"
    models: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    core_sets: tuple[tuple[int, ...], ...]
    rounds: int
    seconds: float  # per measurement; at least 2 runs are timed whatever this says


FULL = Plan("full", (RESNET, *REGION_MODELS), (1, 8, 32), ((0,), (0, 1)), rounds=3, seconds=1.0)
QUICK = Plan("quick", ("digits-roialign", "digits-roipool"), (1, 8), ((0,),), rounds=1, seconds=0.05)


def _entry(name: str) -> Path:
    if name == RESNET:
        entry = BENCH_REPOSITORY / RESNET / "1"
        if not (entry / "manifest.json").exists():
            from bench.resnet import write_entry  # torch: only when the model must be built

            write_entry(BENCH_REPOSITORY)
        return entry
    return ROOT / "model_repository" / name / "1"


def _digit_canvases(batch: int) -> dict[str, np.ndarray]:
    """``batch`` canvases of held-out digits with the digits' boxes (as ``bench.quantized``)."""
    from poolserve.export.quantize_shipped import canvas_cases
    from poolserve.models.evaluation_sets import held_out_canvases
    from poolserve.models.mnist import held_out_split

    return dict(canvas_cases(held_out_canvases(held_out_split().test, batch))[0])


def _face_windows(batch: int, size: int) -> dict[str, np.ndarray]:
    """Seeded noise images (already normalized) and a grid of face-sized windows on each."""
    steps = np.arange(0, size, FACE_WINDOW, dtype=np.float32)
    grid = np.array([[x, y, x + FACE_WINDOW, y + FACE_WINDOW] for y in steps for x in steps], np.float32)
    images = np.random.default_rng(SEED).standard_normal((batch, 3, size, size)).astype(np.float32)
    return {
        "images": images,
        "boxes": np.tile(grid, (batch, 1)),
        "box_batch_indices": np.repeat(np.arange(batch, dtype=np.int64), len(grid)),
    }


def feeds(name: str, manifest: Manifest, batch: int) -> dict[str, np.ndarray]:
    spec = manifest.preprocessing
    if name.startswith("digits-"):
        return _digit_canvases(batch)
    if manifest.roi is not None:
        return _face_windows(batch, spec.height)
    shape = (batch, spec.channels, spec.height, spec.width)
    return {manifest.io.image.name: np.random.default_rng(SEED).standard_normal(shape).astype(np.float32)}


def _prepare(plan: Plan, scratch: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Writes every input once; returns the child's model table and what the report says of each model."""
    table: dict[str, Any] = {}
    described: dict[str, Any] = {}
    for name in plan.models:
        entry = _entry(name)
        manifest = Manifest.model_validate_json((entry / "manifest.json").read_bytes())
        files, boxes = {}, {}
        for batch in plan.batch_sizes:
            feed = feeds(name, manifest, batch)
            files[str(batch)] = str(scratch / f"{name}-{batch}.npz")
            np.savez(files[str(batch)], **feed)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
            if "boxes" in feed:
                boxes[str(batch)] = len(feed["boxes"])
        table[name] = {"path": str(entry / manifest.model_file), "feeds": files}
        described[name] = {
            "roi_op": manifest.roi.op if manifest.roi else None,
            "tolerance": manifest.verification.tolerance,
            "boxes_per_batch": boxes,
        }
    return table, described


def measure(
    python: Path,
    models: dict[str, Any],
    configs: dict[str, Any],
    cores: tuple[int, ...],
    plan: Plan,
    scratch: Path,
) -> dict[str, Any]:
    """One round: a child run of ``bench.openvino_measure`` under ``python``, pinned to ``cores``."""
    threads = len(cores)
    child_configs = {
        label: {**c, "options": {**c["options"], "num_of_threads": threads}} if "options" in c else c
        for label, c in configs.items()
    }
    child_plan = {"cores": list(cores), "threads": threads, "rounds": 1, "seconds": plan.seconds}
    plan_file, result_file = scratch / "plan.json", scratch / "result.json"
    plan_file.write_text(json.dumps({**child_plan, "configs": child_configs, "models": models}))
    done = subprocess.run(
        [str(python), "-m", "bench.openvino_measure", str(plan_file), str(result_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} -m bench.openvino_measure failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median latency and session creation over the rounds, worst parity; placement from the first."""
    models = {}
    for name, first in rounds[0]["models"].items():
        per_round = [r["models"][name] for r in rounds]
        models[name] = {
            "ms_per_batch": {
                label: {
                    b: statistics.median(r["ms_per_batch"][label][b] for r in per_round) for b in per_batch
                }
                for label, per_batch in first["ms_per_batch"].items()
            },
            "max_abs_diff": {
                label: max(r["max_abs_diff"][label] for r in per_round) for label in first["max_abs_diff"]
            },
            "session_create_s": {
                label: statistics.median(r["session_create_s"][label] for r in per_round)
                for label in first["session_create_s"]
            },
            "placement": first["placement"],
        }
    return {**rounds[0], "rounds": len(rounds), "models": models}


def run(plan: Plan, venv: Path) -> dict[str, Any]:
    """Rounds alternate between the two virtualenvs (and, inside the OpenVINO one, between configurations),
    so both see the same load."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{venv} is missing: python -m bench setup builds it")
    if max(max(c) for c in plan.core_sets) >= (os.cpu_count() or 1):
        raise SystemExit(f"this plan pins to cores {plan.core_sets}; the host has {os.cpu_count()}")
    metadata = {**run_metadata(), "load_average_before": [round(v, 2) for v in os.getloadavg()]}
    openvino_venv, main_venv = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        table, described = _prepare(plan, scratch)
        for cores in plan.core_sets:
            label = f"{len(cores)} core" + ("s" if len(cores) > 1 else "")
            openvino_rounds, main_rounds = [], []
            for _ in range(plan.rounds):
                openvino_rounds.append(measure(python, table, CONFIGS, cores, plan, scratch))
                main_rounds.append(
                    measure(Path(sys.executable), table, {"cpu": CONFIGS["cpu"]}, cores, plan, scratch)
                )
            openvino_venv[label] = merge_rounds(openvino_rounds)
            main_venv[label] = merge_rounds(main_rounds)
    metadata["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    results = {
        "metadata": metadata,
        "plan": asdict(plan),
        "configs": CONFIGS,
        "rule": RULE,
        "models": described,
        "openvino_venv": openvino_venv,
        "main_venv_cpu": main_venv,
    }
    results["verdicts"] = verdicts(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openvino", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two digit models, batch 1 and 8, one core")
    parser.add_argument("--venv", type=Path, default=VENVS / "openvino", help="the onnxruntime-openvino venv")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results[/quick]")
    parser.add_argument("--report", type=Path, default=None, help="only redraw openvino.md from this JSON")
    args = parser.parse_args()
    if args.report:
        args.report.with_suffix(".md").write_text(markdown(json.loads(args.report.read_text())))
        return
    results = run(QUICK if args.quick else FULL, args.venv)
    save_results("openvino", results, markdown(results), args.out, args.quick)


if __name__ == "__main__":
    main()
