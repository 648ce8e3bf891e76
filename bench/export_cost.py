"""Wall time of one ONNX export, TorchScript exporter (what poolserve uses) against dynamo.

    python -m bench.export_cost        # writes bench/results/export_cost.json and .md

Why it matters: ``tests/export/test_pooling_matrix.py`` exports hundreds of single pooling layers, so the
exporter's cost per model decides whether that matrix fits in CI. Both exporters run on the same modules
at opset 17 in one process; each figure is the best of several rounds, after one warm-up export (dynamo's
first export in a process also pays for its imports and registration).
"""

from __future__ import annotations

import io
import json
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from bench.provenance import ROOT, run_metadata
from poolserve.export.onnx_export import OPSET
from poolserve.models.zoo import SPECS

RESULTS = ROOT / "bench" / "results"
ROUNDS = 3


def _modules() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    return {
        "MaxPool2d(3, 2, 1) alone, 1x3x7x7": (nn.MaxPool2d(3, 2, 1).eval(), torch.randn(1, 3, 7, 7)),
        "AvgPool2d(2, 2, ceil_mode) alone, 1x3x8x5": (
            nn.AvgPool2d(2, 2, ceil_mode=True).eval(),
            torch.randn(1, 3, 8, 5),
        ),
        "lenet5-mnist, 1x1x28x28": (SPECS["lenet5-mnist"].build().eval(), torch.randn(1, 1, 28, 28)),
    }


def _export(module: nn.Module, example: torch.Tensor, dynamo: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            io.BytesIO(),  # type: ignore[arg-type]
            dynamo=dynamo,
            opset_version=OPSET,
            input_names=["images"],
            dynamic_axes={"images": {0: "batch"}} if not dynamo else None,
            verbose=False,
        )


def _best_ms(call: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        call()
        best = min(best, (time.perf_counter() - start) * 1e3)
    return best


def main() -> None:
    torch.set_num_threads(1)
    meta = run_metadata() | {"torch": torch.__version__, "rounds": ROUNDS}
    modules = _modules()
    rows: list[dict[str, str | float]] = []
    for dynamo in (False, True):
        exporter = "dynamo" if dynamo else "torchscript"
        first = next(iter(modules.values()))
        start = time.perf_counter()
        _export(*first, dynamo=dynamo)  # warm-up, reported apart
        warm_up = (time.perf_counter() - start) * 1e3
        for name, (module, example) in modules.items():
            best = _best_ms(lambda m=module, e=example, d=dynamo: _export(m, e, d))  # type: ignore[misc]
            rows.append({"exporter": exporter, "module": name, "best_ms": best})
        rows.append(
            {
                "exporter": exporter,
                "module": "(first export)",
                "best_ms": warm_up,
            }
        )
    (RESULTS / "export_cost.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "# One ONNX export: TorchScript exporter vs dynamo (opset 17, one thread)",
        "",
        f"`python -m bench.export_cost`, run {meta['started']} at commit `{meta['git_commit']}` on "
        f"{meta['cpu']}, torch {meta['torch']}; best of {ROUNDS} rounds after a warm-up export.",
        "",
        "| module | TorchScript (ms) | dynamo (ms) |",
        "| --- | ---: | ---: |",
    ]
    by = {(r["exporter"], r["module"]): r["best_ms"] for r in rows}
    for name in [*modules, "(first export)"]:
        lines.append(f"| {name} | {by['torchscript', name]:.1f} | {by['dynamo', name]:.1f} |")
    (RESULTS / "export_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
