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
PEERS = ("litserve", "bentoml", "torchserve", "ray-serve")
VARIANT = "poolserve-delay0"  # POOLSERVE_MAX_QUEUE_DELAY_MS=0, a settings override
AIMS = {"raw": 0.9, "bare-endpoint": 0.8, "naive-torch": 3.0, "best-peer": 2.0}


def _curves(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, dict[str, float]]]:
    """(model, target, endpoint) -> concurrency -> means over passes (poolserve runs twice)."""
    grouped: dict[tuple[str, str, str], dict[int, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        grouped[(run["model"], run["target"], run["endpoint"])][run["concurrency"]].append(run)
    metrics = ("images_per_s", "p50_ms", "p95_ms", "p99_ms")
    return {
        key: {
            c: {
                **{m: mean(r[m] for r in rows) for m in metrics},
                "passes": len(rows),
                "errors": sum(r["errors"] for r in rows),
                "foreign_share": max(
                    r.get("foreign_cpu_on_server_core_s", 0.0) / r["duration_s"] for r in rows
                ),
                "client_share": max(r["client_cpu_s"] / r["duration_s"] for r in rows),
            }
            for c, rows in sorted(by_c.items())
        }
        for key, by_c in grouped.items()
    }


def _peak(curve: dict[int, dict[str, float]]) -> float:
    return max(point["images_per_s"] for point in curve.values())


def _header(meta: dict[str, Any]) -> list[str]:
    return [
        "# poolserve benchmark: ratios",
        "",
        f"Run {meta['started']} at commit `{meta['git_commit'][:10]}` on {meta['cpu']} "
        f"({meta['cores']} cores), {meta.get('wall_s', 0) / 60:.1f} minutes. Every server pinned to core "
        f"{meta['server_cores']} (taskset; one onnxruntime/torch thread), the load generator (wrk, one "
        f"thread, closed loop) to core {meta['client_cores']}, both at nice {meta['nice']}. "
        f"Plan: {meta['plan']}. Load average {meta['loadavg_start'][0]:.2f} at the start, "
        f"{meta.get('loadavg_end', [0])[0]:.2f} at the end: this machine is shared with other work, and "
        "the `foreign` column says how much of the server core other processes took during a run.",
        "",
        "Throughput is images/s at the best concurrency; a ratio above 1 means poolserve is faster. "
        "poolserve ran first and last in each model's block; its figures are the mean of both passes.",
        "",
    ]


def _ratio_rows(
    results: dict[str, Any], curves: dict[tuple[str, str, str], dict[int, dict[str, float]]], model: str
) -> list[str]:
    pool_peak = _peak(curves[(model, "poolserve", "classify")])
    compute_bound = not model.startswith("lenet")
    rows = [
        "| poolserve ÷ | their peak img/s | poolserve peak img/s | ratio | aim |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    raw = results["raw_ort"].get("resnet" if compute_bound else "digits")
    if raw:
        raw_peak = raw["best_images_per_s"]
        aim = f"≥ {AIMS['raw']}" if compute_bound else "(not the limit for a tiny model)"
        rows.append(
            f"| raw onnxruntime in-process, no HTTP (batch {raw['best_batch_size']}) | {raw_peak:.1f} "
            f"| {pool_peak:.1f} | {pool_peak / raw_peak:.2f} | {aim} |"
        )
    peer_peaks = {}
    for target, label in TARGETS.items():
        curve = curves.get((model, target, "classify"))
        if not curve:
            rows.append(f"| {label} | not measured | {pool_peak:.1f} | – | |")
            continue
        peak = _peak(curve)
        if target in PEERS:
            peer_peaks[label] = peak
        aim = {"naive-torch": f"≥ {AIMS['naive-torch']}"}.get(target, "")
        if target == "bare-endpoint":
            aim = "(the limit for tiny models only)" if compute_bound else f"≥ {AIMS['bare-endpoint']}"
        rows.append(f"| {label} | {peak:.1f} | {pool_peak:.1f} | {pool_peak / peak:.2f} | {aim} |")
    if peer_peaks:
        best = max(peer_peaks, key=lambda k: peer_peaks[k])
        rows.append(
            f"| **best peer** ({best}) | {peer_peaks[best]:.1f} | {pool_peak:.1f} | "
            f"**{pool_peak / peer_peaks[best]:.2f}** | ≥ {AIMS['best-peer']} |"
        )
    return rows


def _concurrency_rows(
    curves: dict[tuple[str, str, str], dict[int, dict[str, float]]], model: str, endpoint: str
) -> list[str]:
    concurrencies = sorted(
        {c for (m, _, e), curve in curves.items() if m == model and e == endpoint for c in curve}
    )
    rows = [
        "| target | " + " | ".join(f"c={c}" for c in concurrencies) + " | foreign | client |",
        "| --- |" + " ---: |" * (len(concurrencies) + 2),
    ]
    for target in ["poolserve", VARIANT, *TARGETS]:
        curve = curves.get((model, target, endpoint))
        if not curve:
            continue
        cells = [
            f"{curve[c]['images_per_s']:.1f} ({curve[c]['p50_ms']:.0f}/{curve[c]['p95_ms']:.0f}/"
            f"{curve[c]['p99_ms']:.0f})" + (f" **{curve[c]['errors']} errors**" if curve[c]["errors"] else "")
            if c in curve
            else "–"
            for c in concurrencies
        ]
        foreign = max(p["foreign_share"] for p in curve.values())
        client = max(p["client_share"] for p in curve.values())
        rows.append(f"| {target} | " + " | ".join(cells) + f" | {foreign:.0%} | {client:.0%} |")
    return rows


def headline(results: dict[str, Any]) -> list[str]:
    """One row per model: poolserve's peak throughput divided by each comparison's."""
    curves = _curves(results["runs"])
    rows = [
        "| model | ÷ raw onnxruntime | ÷ bare endpoint | ÷ naive torch | ÷ best peer |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    keys = sorted((m, t) for m, t, e in curves if t in ("poolserve", VARIANT) and e == "classify")
    for model, target in keys:
        pool = _peak(curves[(model, target, "classify")])
        raw = results["raw_ort"].get("digits" if model.startswith("lenet") else "resnet")
        cells = [f"{pool / raw['best_images_per_s']:.2f}" if raw else "–"]
        for baseline in ("bare-endpoint", "naive-torch"):
            curve = curves.get((model, baseline, "classify"))
            cells.append(f"{pool / _peak(curve):.2f}" if curve else "–")
        peers = {t: _peak(curves[(model, t, "classify")]) for t in PEERS if (model, t, "classify") in curves}
        if peers:
            best = max(peers, key=lambda t: peers[t])
            cells.append(f"{pool / peers[best]:.2f} ({best})")
        else:
            cells.append("–")
        label = model if target == "poolserve" else f"{model}, `{VARIANT}`"
        rows.append(f"| {label} ({pool:.0f} img/s) | " + " | ".join(cells) + " |")
    return rows


def markdown(results: dict[str, Any]) -> str:
    curves = _curves(results["runs"])
    lines = _header(results["meta"])
    lines += ["Headline: poolserve's peak throughput divided by each comparison's peak.", ""]
    lines += [*headline(results), ""]
    for model in sorted({m for m, t, e in curves if t == "poolserve" and e == "classify"}):
        lines += [f"## {model}", "", *_ratio_rows(results, curves, model), ""]
        lines += [
            "images/s (p50/p95/p99 ms) per concurrency; `foreign`: the largest share of the server "
            "core other processes took in a run; `client`: wrk's own CPU share of its core.",
            "",
        ]
        lines += [*_concurrency_rows(curves, model, "classify"), ""]
    for model in sorted({m for m, _, e in curves if e == "features"}):
        lines += [f"## {model}: poolserve region features (one canvas with its boxes per request)", ""]
        lines += [*_concurrency_rows(curves, model, "features"), ""]
    for raw in results["raw_ort"].values():
        per_batch = ", ".join(f"{b}: {v:.1f}" for b, v in raw["images_per_s"].items())
        lines += [f"Raw onnxruntime, {raw['model']}, images/s by batch size: {per_batch}."]
        if "end_images_per_s" in raw:  # measured at both ends of the block: the mean is the reference
            lines += [
                f"Batch {raw['best_batch_size']} measured again for three times as long before the servers "
                f"ran ({raw['start_images_per_s']:.1f}) and after them ({raw['end_images_per_s']:.1f}); "
                f"their mean is the figure compared with: {raw['best_images_per_s']:.1f}.",
            ]
        elif "scan_best_images_per_s" in raw:  # results from before the confirming run have none
            lines += [
                f"Batch {raw['best_batch_size']} measured again for three times as long (the figure "
                f"compared with): {raw['best_images_per_s']:.1f}.",
            ]
        lines += [""]
    if results.get("rss_mb"):
        lines += ["## poolserve resident memory (MiB, whole process tree)", ""]
        lines += [f"- {k}: {v:.0f}" for k, v in results["rss_mb"].items()]
        lines.append("")
    if results.get("failures"):
        lines += ["## Failures", ""]
        lines += [f"- {f['target']} / {f['model']}: {f['error']}" for f in results["failures"]]
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
        axes[row][0].set_yscale("log")  # the bare endpoint is 10x the rest on the ResNet
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
