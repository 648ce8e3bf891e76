"""What one box costs each shipped region model, by box size, against the box policy's bound.

    python -m bench.roi_box_cost

Raw onnxruntime, in process, 1 intra-op thread, one image of noise. For each box kind (a digit-sized
box, the whole input frame, the largest box ``poolserve.service.runtime.region_inputs`` lets through, and a
box
10x the frame, refused since) the marginal cost of a box: ``(t(9 boxes) - t(1 box)) / 8``, best of
several rounds (the host is shared). Beside it, ``roi_cost_bound``: the cells the RoI op reads per box
and channel at most. Writes bench/results/roi_box_cost.json and .md, with the git commit.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from poolserve.repository.manifest import Manifest
from poolserve.service.runtime.region_inputs import (
    MAX_OVERHANG,
    BoxFrame,
    check_region_inputs,
    roi_cost_bound,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODELS = ("digits-roialign", "digits-roipool", "mtcnn-onet-regions")
ROUNDS = 5


def box_kinds(frame: BoxFrame) -> dict[str, tuple[list[float], bool]]:
    """Box (input frame) and whether the policy lets it through."""
    w, h = frame.width, frame.height
    low_x, low_y, high_x, high_y = frame.limits
    return {
        "digit-sized (1/6 of the side)": ([w / 3, h / 3, w / 2, h / 2], True),
        "whole frame": ([0, 0, w, h], True),
        f"largest allowed ({1 + 2 * MAX_OVERHANG:g}x the frame)": ([low_x, low_y, high_x, high_y], True),
        "10x the frame (refused)": ([0, 0, 10 * w, 10 * h], False),
    }


def best_ms(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def measure(name: str) -> dict[str, Any]:
    path = ROOT / "model_repository" / name / "1"
    manifest = Manifest.model_validate_json((path / "manifest.json").read_bytes())
    assert manifest.roi is not None and manifest.io.boxes and manifest.io.box_batch_indices
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    spec, frame = manifest.preprocessing, BoxFrame.of(manifest)
    image = np.random.default_rng(0).standard_normal((1, spec.channels, spec.height, spec.width), np.float32)
    rows = []
    for kind, (box, allowed) in box_kinds(frame).items():
        times = {}
        for count in (1, 9):
            boxes = np.asarray([box] * count, np.float32)
            indices = np.zeros(count, np.int64)
            if allowed:
                check_region_inputs(boxes, indices, 1, frame)  # the box really is within the policy
            feeds: dict[str, np.ndarray] = {
                manifest.io.image.name: image,
                manifest.io.boxes.name: boxes,
                manifest.io.box_batch_indices.name: indices,
            }
            times[count] = best_ms(session, feeds)
        rows.append({"box": kind, "allowed": allowed, "ms_per_box": round((times[9] - times[1]) / 8, 3)})
        print(name, rows[-1], flush=True)
    return {
        "roi": manifest.roi.model_dump(),
        "frame": [frame.width, frame.height],
        "cost_bound_cells_per_box_and_channel": roi_cost_bound(manifest.roi, frame),
        "boxes": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Cost of one box, by box size",
        "",
        f"`python -m bench.roi_box_cost` at commit `{results['git_commit'][:10]}`; onnxruntime "
        f"{results['onnxruntime']}, 1 intra-op thread, CPU ({results['machine']}), best of {ROUNDS} rounds "
        "on a shared host. Marginal ms per box: (9 boxes - 1 box) / 8.",
        "",
        "| model | RoI op | bound (cells read per box and channel) | box | allowed | ms per box |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, model in results["models"].items():
        roi = model["roi"]
        op = roi["op"] + (f" (sampling_ratio {roi['sampling_ratio']})" if roi["op"] == "RoiAlign" else "")
        for row in model["boxes"]:
            lines.append(
                f"| {name} | {op} | "
                f"{model['cost_bound_cells_per_box_and_channel']:,} | {row['box']} | "
                f"{'yes' if row['allowed'] else 'no'} | {row['ms_per_box']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    results = {
        "git_commit": commit.strip(),
        "onnxruntime": ort.__version__,
        "machine": platform.machine(),
        "models": {name: measure(name) for name in MODELS},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "roi_box_cost.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "roi_box_cost.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
