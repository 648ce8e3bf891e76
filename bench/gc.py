"""The garbage collector under load: poolserve with its heap frozen after start-up (the default) against
the same code with ``POOLSERVE_GC_FREEZE=false``, across concurrency, on the digit model and the
ResNet-size model.

    python -m bench.gc [--quick] [--models digits resnet]

The harness is bench.window's (servers pinned to core 0 with one onnxruntime thread, wrk on core 1, the
two settings taking turns in a rotated order each round, a cell the median over rounds); each run also
reads the collector's pauses from the server's ``/metrics`` (``poolserve_gc_pause_seconds``): all of them
per second of load, and the full (generation 2) collections, their number and mean length. Writes
bench/results/gc.json, gc.md and gc.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import window
from bench.window import Comparison, cells

GC = Comparison(
    "gc",
    {"no-freeze": {"POOLSERVE_GC_FREEZE": "false"}, "freeze": {"POOLSERVE_GC_FREEZE": "true"}},
    baseline="no-freeze",
    new="freeze",
)


def markdown(results: dict[str, Any]) -> str:
    meta, table = results["meta"], cells(results["runs"])
    base_name = meta["baseline"]
    lines = [
        "# The garbage collector under load: heap frozen after start-up vs not",
        "",
        window.run_line(meta),
        "",
        "Settings of the same code: "
        + window.settings_line(meta)
        + f". Each cell is the median of {meta['plan']['rounds']} rounds, the two taking turns; "
        f"`÷ {base_name}` divides by the unfrozen figure at the same concurrency (throughput: above 1 is "
        "better; p99: below 1 is better). GC columns come from the server's `poolserve_gc_pause_seconds`: "
        "the time all collections stopped the process per second of load, and the full collections "
        "in one run with their mean length.",
        "",
    ]
    columns: list[window.Column] = [
        ("p50 ms", lambda cell: f"{cell['p50_ms']:.1f}"),
        ("p95 ms", lambda cell: f"{cell['p95_ms']:.1f}"),
        ("p99 ms", lambda cell: f"{cell['p99_ms']:.1f}"),
        ("GC pause ms per s", lambda cell: f"{cell['gc_pause_ms_per_s']:.1f}"),
        (
            "full collections (mean ms)",
            lambda cell: f"{cell['gc_full_collections']:.0f} ({cell['gc_full_ms_mean']:.1f})",
        ),
    ]
    for model in sorted({m for m, _, _ in table}):
        rows = window.model_table(table, model, "setting", list(meta["policies"]), base_name, columns)
        lines += [f"## {model}", "", *rows, ""]
    lines += [*summary(table, meta["baseline"], meta["new"]), ""]
    return "\n".join(lines)


def summary(table: dict[tuple[str, str, int], dict[str, float]], baseline: str, new: str) -> list[str]:
    """The frozen heap's best and worst cells against the unfrozen one, in throughput and in p99."""
    paired = window.paired_cells(table, baseline, new)
    pairs = [(f"{model} c={c}", cell, base) for model, c, cell, base in paired]
    if not pairs:
        return []
    rates = sorted(pairs, key=lambda p: p[1]["images_per_s"] / p[2]["images_per_s"])
    p99s = sorted(pairs, key=lambda p: p[1]["p99_ms"] / p[2]["p99_ms"])

    def ratio(pair: tuple[str, dict[str, float], dict[str, float]], key: str) -> str:
        return f"{pair[1][key] / pair[2][key]:.2f}× ({pair[0]})"

    return [
        f"`{new}` against `{baseline}`: throughput from {ratio(rates[0], 'images_per_s')} to "
        f"{ratio(rates[-1], 'images_per_s')}; p99 from {ratio(p99s[0], 'p99_ms')} to "
        f"{ratio(p99s[-1], 'p99_ms')}."
    ]


def write_report(results_path: Path) -> tuple[Path, Path]:
    return window.write_report(results_path, markdown)


def main(argv: list[str] | None = None) -> None:
    window.cli(argv, GC, write_report)


if __name__ == "__main__":
    main()
