"""results.json -> ``ratios.md`` (poolserve divided by each comparison) and ``throughput_p99.png``.

Peak throughput is the best images/s over the concurrency levels; for poolserve it is the mean of its
two passes (first and last in each model's block) at each level, so drift during the run counts
against it and not for it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

TARGETS = {
    "bare-endpoint": "bare FastAPI endpoint (decode only)",
    "naive-torch": "naive FastAPI + PyTorch eager",
    "litserve": "LitServe",
    "bentoml": "BentoML",
    "torchserve": "TorchServe",
    "ray-serve": "Ray Serve",
}
AIMS = {"raw": 0.9, "bare-endpoint": 0.8, "naive-torch": 3.0, "best-peer": 2.0}


def _curves(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, dict[str, float]]]:
    """(model, target, endpoint) -> concurrency -> mean images/s and p99 over passes."""
    grouped: dict[tuple[str, str, str], dict[int, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        grouped[(run["model"], run["target"], run["endpoint"])][run["concurrency"]].append(run)
    return {
        key: {
            c: {
                "images_per_s": mean(r["images_per_s"] for r in rows),
                "p50_ms": mean(r["p50_ms"] for r in rows),
                "p95_ms": mean(r["p95_ms"] for r in rows),
                "p99_ms": mean(r["p99_ms"] for r in rows),
                "passes": len(rows),
                "errors": sum(r["errors"] for r in rows),
            }
            for c, rows in sorted(by_c.items())
        }
        for key, by_c in grouped.items()
    }


def _peak(curve: dict[int, dict[str, float]]) -> float:
    return max(point["images_per_s"] for point in curve.values())


def markdown(results: dict[str, Any]) -> str:
    curves = _curves(results["runs"])
    meta = results["meta"]
    lines = [
        "# poolserve benchmark: ratios",
        "",
        f"Run {meta['started']} at commit `{meta['git_commit'][:10]}` on {meta['cpu']} "
        f"({meta['cores']} cores). "
        f"Servers pinned to core {meta['server_cores']}, the load generator (wrk, one thread) to core "
        f"{meta['client_cores']}, both at nice {meta['nice']}. Plan: {meta['plan']}. "
        f"Load average {meta['loadavg_start'][0]:.2f} at the start, {meta.get('loadavg_end', [0])[0]:.2f} at "
        "the end (this machine is shared with other work).",
        "",
        "Throughput is images/s at the best concurrency; a ratio above 1 means poolserve is faster.",
        "",
    ]
    models = sorted({m for m, t, e in curves if t == "poolserve" and e == "classify"})
    for model in models:
        pool = curves[(model, "poolserve", "classify")]
        pool_peak = _peak(pool)
        raw_key = "digits" if model.startswith("lenet") else "resnet"
        lines += [
            f"## {model}",
            "",
            "| poolserve ÷ | their peak img/s | poolserve peak img/s | ratio | aim |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        raw = results["raw_ort"].get(raw_key)
        if raw:
            raw_peak = raw["best_images_per_s"]
            lines.append(
                f"| raw onnxruntime in-process (batch {raw['best_batch_size']}) | {raw_peak:.1f} "
                f"| {pool_peak:.1f} | {pool_peak / raw_peak:.2f} | ≥ {AIMS['raw']} (compute-bound) |"
            )
        peer_peaks = {}
        for target, label in TARGETS.items():
            curve = curves.get((model, target, "classify"))
            if not curve:
                lines.append(f"| {label} | not measured | {pool_peak:.1f} | – | |")
                continue
            peak = _peak(curve)
            if target in ("litserve", "bentoml", "torchserve", "ray-serve"):
                peer_peaks[label] = peak
            aim = {"bare-endpoint": f"≥ {AIMS['bare-endpoint']} (tiny model)", "naive-torch": "≥ 3"}.get(
                target, ""
            )
            lines.append(f"| {label} | {peak:.1f} | {pool_peak:.1f} | {pool_peak / peak:.2f} | {aim} |")
        if peer_peaks:
            best = max(peer_peaks, key=lambda k: peer_peaks[k])
            lines.append(
                f"| best peer ({best}) | {peer_peaks[best]:.1f} | {pool_peak:.1f} | "
                f"{pool_peak / peer_peaks[best]:.2f} | ≥ 2 |"
            )
        lines += ["", "Per concurrency: images/s (p50 / p99 ms)", ""]
        targets = ["poolserve", *TARGETS]
        concurrencies = sorted(pool)
        lines.append("| target | " + " | ".join(f"c={c}" for c in concurrencies) + " |")
        lines.append("| --- |" + " ---: |" * len(concurrencies))
        for target in targets:
            curve = curves.get((model, target, "classify"))
            if curve:
                cells = [
                    f"{curve[c]['images_per_s']:.1f} ({curve[c]['p50_ms']:.0f} / {curve[c]['p99_ms']:.0f})"
                    if c in curve
                    else "–"
                    for c in concurrencies
                ]
                lines.append(f"| {target} | " + " | ".join(cells) + " |")
        lines.append("")
    features = sorted({m for m, t, e in curves if e == "features"})
    if features:
        lines += [
            "## poolserve region features (one canvas per request)",
            "",
            "| model | " + " | ".join(f"c={c}" for c in sorted(next(iter(curves.values())))) + " |",
        ]
        lines.append("| --- |" + " ---: |" * len(next(iter(curves.values()))))
        for model in features:
            curve = curves[(model, "poolserve", "features")]
            lines.append(
                f"| {model} | "
                + " | ".join(
                    f"{p['images_per_s']:.1f} req/s ({p['p50_ms']:.0f} / {p['p99_ms']:.0f} ms)"
                    for p in curve.values()
                )
                + " |"
            )
        lines.append("")
    if results.get("rss_mb"):
        lines += ["## poolserve resident memory (MiB, whole process tree)", ""]
        lines += [f"- {k}: {v:.0f}" for k, v in results["rss_mb"].items()]
        lines.append("")
    if results.get("failures"):
        lines += ["## Failures", ""] + [
            f"- {f['target']} / {f['model']}: {f['error']}" for f in results["failures"]
        ]
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _curves(results["runs"])
    models = sorted({m for m, _, e in curves if e == "classify"})
    if not models:
        return
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 4.5 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for (m, target, endpoint), curve in sorted(curves.items()):
            if m != model or endpoint != "classify":
                continue
            xs = list(curve)
            style = {"linewidth": 3, "color": "black"} if target == "poolserve" else {"linewidth": 1.5}
            axes[row][0].plot(
                xs, [p["images_per_s"] for p in curve.values()], marker="o", label=target, **style
            )
            axes[row][1].plot(xs, [p["p99_ms"] for p in curve.values()], marker="o", label=target, **style)
        axes[row][0].set_title(f"{model}: throughput (images/s)")
        axes[row][1].set_title(f"{model}: p99 latency (ms)")
        axes[row][1].set_yscale("log")
        for ax in axes[row]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.grid(True, alpha=0.3)
        axes[row][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(results_path: Path) -> tuple[Path, Path]:
    results = json.loads(results_path.read_text())
    md = results_path.with_name("ratios.md")
    md.write_text(markdown(results))
    png = results_path.with_name("throughput_p99.png")
    plot(results, png)
    return md, png
