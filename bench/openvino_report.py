"""The verdicts and the Markdown report of ``bench.openvino``, from its results dict alone."""

from __future__ import annotations

from typing import Any

WIN_SPEEDUP = 1.2
CPU_LABEL = "cpu"
OPENVINO = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"
RULE = (
    f"OpenVINO wins on a model when it is at least {WIN_SPEEDUP}x as fast as the faster of the two "
    "onnxruntime builds' CPU providers at every batch size on every core set, with its max abs diff from "
    "the CPU provider within the tolerance of the model's manifest"
)


def _openvino_configs(results: dict[str, Any]) -> list[str]:
    return [label for label in results["configs"] if label != CPU_LABEL]


def cpu_baseline_ms(results: dict[str, Any], cores: str, name: str) -> dict[str, float]:
    """Per batch size, the faster of the two CPU providers: the one in onnxruntime-openvino's build and
    the one in the onnxruntime poolserve ships (a user who switches wheels gives up the latter)."""
    bundled = results["openvino_venv"][cores]["models"][name]["ms_per_batch"][CPU_LABEL]
    shipped = results["main_venv_cpu"][cores]["models"][name]["ms_per_batch"][CPU_LABEL]
    return {b: min(ms, shipped[b]) for b, ms in bundled.items()}


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Per model and OpenVINO configuration: the smallest and largest speedup over the CPU baseline (every
    batch size, every core set), the worst parity, and whether it wins."""
    out: dict[str, Any] = {}
    for name, model in results["models"].items():
        per_config: dict[str, Any] = {}
        for label in _openvino_configs(results):
            speedups, parity = [], 0.0
            for cores, run in results["openvino_venv"].items():
                measured = run["models"][name]
                ms = measured["ms_per_batch"][label]
                baseline = cpu_baseline_ms(results, cores, name)
                speedups += [baseline[b] / ms[b] for b in baseline]
                parity = max(parity, measured["max_abs_diff"][label])
            within = parity <= model["tolerance"]
            per_config[label] = {
                "min_speedup": round(min(speedups), 3),
                "max_speedup": round(max(speedups), 3),
                "max_abs_diff": parity,
                "parity_within_tolerance": within,
                "wins": within and min(speedups) >= WIN_SPEEDUP,
            }
        out[name] = per_config
    return out


def winners(results: dict[str, Any]) -> list[str]:
    """``model (configuration)`` for every OpenVINO configuration that wins on a model."""
    return [
        f"{name} ({label})"
        for name, per_config in results["verdicts"].items()
        for label, verdict in per_config.items()
        if verdict["wins"]
    ]


def _per_s(batch: str, ms: float) -> str:
    rate = 1000 * int(batch) / ms
    return f"{rate:.1f}" if rate < 100 else f"{rate:.0f}"


def _latency_rows(results: dict[str, Any]) -> list[str]:
    labels = _openvino_configs(results)
    header = [
        "model",
        "cores",
        "batch (boxes)",
        "cpu ms (openvino build)",
        "cpu ms (shipped build)",
        "cpu img/s",
    ]
    for label in labels:
        header += [f"{label} ms", f"{label} img/s", f"{label} speedup"]
    rows = ["| " + " | ".join(header) + " |", "| --- | --- | --- |" + " ---: |" * (len(header) - 3)]
    for name, model in results["models"].items():
        for cores, run in results["openvino_venv"].items():
            ms = run["models"][name]["ms_per_batch"]
            shipped = results["main_venv_cpu"][cores]["models"][name]["ms_per_batch"][CPU_LABEL]
            baseline = cpu_baseline_ms(results, cores, name)
            for batch, base_ms in baseline.items():
                boxes = model["boxes_per_batch"].get(batch)
                cells = [name, cores, batch + (f" ({boxes})" if boxes is not None else "")]
                cells += [
                    f"{ms[CPU_LABEL][batch]:.2f}",
                    f"{shipped[batch]:.2f}",
                    _per_s(batch, base_ms),
                ]
                for label in labels:
                    cells += [
                        f"{ms[label][batch]:.2f}",
                        _per_s(batch, ms[label][batch]),
                        f"{base_ms / ms[label][batch]:.2f}x",
                    ]
                rows.append("| " + " | ".join(cells) + " |")
    return rows


def _parity_rows(results: dict[str, Any]) -> list[str]:
    labels = _openvino_configs(results)
    header = ["model", "RoI op", "tolerance"] + [f"{label} max abs diff" for label in labels]
    header += [f"{label}: nodes left to the CPU provider" for label in labels]
    rows = ["| " + " | ".join(header) + " |", "| --- | --- |" + " ---: |" * len(labels) * 2 + " --- |"]
    placement_run = next(iter(results["openvino_venv"].values()))
    for name, model in results["models"].items():
        verdict = results["verdicts"][name]
        cells = [name, model["roi_op"] or "none", f"{model['tolerance']:g}"]
        cells += [f"{verdict[label]['max_abs_diff']:.3g}" for label in labels]
        for label in labels:
            ops = placement_run["models"][name]["placement"][label]["ops"]
            subgraphs = len(ops.get(OPENVINO, []))
            left = ", ".join(ops.get(CPU, [])) or "none"
            cells.append(f"{left} ({subgraphs} OpenVINO subgraph{'s' if subgraphs != 1 else ''})")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def markdown(results: dict[str, Any]) -> str:
    meta, plan = results["metadata"], results["plan"]
    first = next(iter(results["openvino_venv"].values()))
    main = next(iter(results["main_venv_cpu"].values()))
    won = winners(results)
    decision = (
        f"OpenVINO wins on {', '.join(won)}."
        if won
        else "OpenVINO wins on no model: the CPU provider stays poolserve's CPU choice."
    )
    lines = [
        "# OpenVINO execution provider against onnxruntime's CPU provider\n",
        "Written by `python -m bench.openvino`"
        + (" --quick" if plan["name"] == "quick" else "")
        + f". Commit {meta['git_commit']}, {meta['cpu']} ({meta['cores']} cores), started {meta['started']}; "
        f"load average {meta['load_average_before']} before, {meta['load_average_after']} after.",
        f"onnxruntime-openvino {first['onnxruntime']} (its CPU provider is the openvino build's) and "
        f"onnxruntime {main['onnxruntime']} (the shipped build). Each configuration gets as many threads as "
        f"pinned cores; median of {plan['rounds']} round(s) alternating between them, at least "
        f"{plan['seconds']} s each. `cpu img/s` and the speedups are against the faster CPU provider.\n",
        "## Latency per batch and throughput\n",
        *_latency_rows(results),
        "\n## Parity with the CPU provider, and where nodes run\n",
        "OpenVINO compiles what it takes into fused subgraphs; the nodes it leaves to the CPU provider are "
        "listed by op type (onnxruntime's profiler, smallest batch, first core set).\n",
        *_parity_rows(results),
        f"\n## Verdict\n\nRule: {results['rule']}.\n",
        "| model | configuration | speedup (min-max) | parity within tolerance | wins |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, per_config in results["verdicts"].items():
        for label, v in per_config.items():
            lines.append(
                f"| {name} | {label} | {v['min_speedup']:.2f}-{v['max_speedup']:.2f}x "
                f"| {'yes' if v['parity_within_tolerance'] else 'no'} | {'yes' if v['wins'] else 'no'} |"
            )
    lines.append(f"\n{decision}")
    return "\n".join(lines) + "\n"
