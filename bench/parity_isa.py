"""How far the parity figures move when PyTorch's kernels change: the same exports under other CPU ISAs.

    python -m bench.parity_isa          # writes bench/results/parity_isa.json and .md

Parity (``poolserve.export.parity.compare``) is PyTorch eager against onnxruntime. PyTorch's convolutions run
through oneDNN, which picks its vector kernels by CPU and honours ``ONEDNN_MAX_CPU_ISA``; so the figure a
manifest records is one CPU's measurement. Each ISA runs in a child process (oneDNN reads the variable
once), measuring what the test suite measures: the ONet exports written to ``model_repository/`` and
every shipped architecture with seeded weights (``tests/export/test_shipped_models.py``). The held-out
accuracies are onnxruntime alone (MLAS, which ignores the variable) and are not re-measured here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.provenance import ROOT, run_metadata

RESULTS = ROOT / "bench" / "results"
ISAS = ("native", "AVX2", "SSE41")
MARKER = "PARITY_ISA "


def _measure() -> dict[str, Any]:
    import torch

    from poolserve.export.digit_cases import classifier_cases, region_cases
    from poolserve.export.onet_entries import TOLERANCE, export_onet_entries
    from poolserve.export.onnx_export import CLASSIFIER_SIGNATURE, REGION_SIGNATURE, export_onnx
    from poolserve.export.parity import compare
    from poolserve.export.wheels import DEFAULT_WHEEL_CACHE
    from poolserve.models.canvas import compose_canvases
    from poolserve.models.mnist import held_out_split
    from poolserve.models.zoo import SPECS

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for manifest in export_onet_entries(Path(scratch), ROOT / DEFAULT_WHEEL_CACHE):
            figures[f"{manifest.name} (export)"] = manifest.verification.max_abs_error
    test = held_out_split().test
    for name in sorted(SPECS):
        torch.manual_seed(0)  # the same seeded weights as test_architecture_exports_with_parity
        spec = SPECS[name]
        model = spec.build().eval()
        if spec.task == "classification":
            cases, signature = classifier_cases(test.images, spec.input_size), CLASSIFIER_SIGNATURE
        else:
            canvases = compose_canvases(test, 7, seed=3)
            cases, signature = region_cases(canvases, spec.input_size), REGION_SIGNATURE
        example = tuple(torch.from_numpy(v) for v in cases[-1].values())
        result = compare(export_onnx(model, example, signature), model, cases, tolerance=TOLERANCE)
        figures[f"{name} (seeded architecture)"] = result.max_abs_error
    return {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "max_abs_error": figures}


def _child(isa: str) -> dict[str, Any]:
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    done = subprocess.run(
        [sys.executable, "-m", "bench.parity_isa", "--child"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    result: dict[str, Any] = json.loads(next(ln for ln in lines if ln.startswith(MARKER))[len(MARKER) :])
    # oneDNN's verbose header names the ISA it actually dispatched to (the variable only caps it).
    result["onednn_isa"] = next((ln.split("isa:", 1)[1] for ln in lines if ",isa:" in ln), "unknown")
    return {"isa_cap": isa, **result}


def _markdown(results: dict[str, Any]) -> str:
    meta, runs = results["meta"], results["runs"]
    names = list(runs[0]["max_abs_error"])
    lines = [
        "# Parity (max abs error, PyTorch eager vs onnxruntime) under other oneDNN ISAs",
        "",
        f"`python -m bench.parity_isa`, run {meta['started']} at commit `{meta['git_commit']}` on "
        f"{meta['cpu']}. Each column is one child process with `ONEDNN_MAX_CPU_ISA` capped as named.",
        "",
        "| export | " + " | ".join(r["isa_cap"] for r in runs) + " |",
        "| --- |" + " ---: |" * len(runs),
    ]
    lines += [f"| {n} | " + " | ".join(f"{r['max_abs_error'][n]:.3e}" for r in runs) + " |" for n in names]
    lines += [
        "",
        "oneDNN dispatched to: " + "; ".join(f"{r['isa_cap']}: {r['onednn_isa']}" for r in runs) + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        print(MARKER + json.dumps(_measure()))
        return
    results = {"meta": run_metadata(), "runs": [_child(isa) for isa in ISAS]}
    (RESULTS / "parity_isa.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "parity_isa.md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main()
