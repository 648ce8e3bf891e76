"""Two versions of the code, one request path, interleaved: ``bench.inprocess`` on a git revision and on
the working tree, round after round (A B A B ...), so that a busy host slows both alike.

    python -m bench.ab_inprocess REVISION [--quick] [--model lenet5-mnist] [--concurrency 1 32]

The revision is exported with ``git archive`` to a temporary directory (nothing in the repository
changes). Each round is a fresh process per version; the figure per version and concurrency is its best
round, and the ratio is working tree over revision. Writes ``ab_inprocess.json`` and ``ab_inprocess.md``
(default ``bench/results/``; ``--quick``: ``bench/results/quick/``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.provenance import ROOT, run_metadata, save_results

_FIGURES = re.compile(r"(\d+) req/s, (\d+) us wall and (\d+) us CPU per request")


def export(revision: str, into: Path) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", revision], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "x", "-C", str(into)], input=archive, check=True)
    return commit


def one_round(tree: Path, model: str, requests: int, concurrency: int) -> dict[str, float]:
    env = os.environ | {"PYTHONPATH": str(tree)}
    # The working tree's driver for both versions, so that only the app differs; run_path, because running
    # the file itself would put bench/ (and its profile.py) first on sys.path.
    driver = ROOT / "bench" / "inprocess.py"
    code = f"import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path({str(driver)!r}, run_name='__main__')"
    argv = [sys.executable, "-c", code, str(driver), model, str(requests), str(concurrency), "1"]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"bench.inprocess failed in {tree}:\n{done.stderr[-2000:]}")
    out = done.stdout
    match = _FIGURES.search(out)
    if match is None:
        raise RuntimeError(f"unexpected bench.inprocess output: {out!r}")
    rate, wall, cpu = (int(g) for g in match.groups())
    return {"req_per_s": rate, "wall_us": wall, "cpu_us": cpu}


def measure(base: Path, model: str, concurrencies: list[int], requests: int, rounds: int) -> dict[str, Any]:
    trees = {"revision": base, "working tree": ROOT}
    runs: dict[str, dict[int, list[dict[str, float]]]] = {v: {c: [] for c in concurrencies} for v in trees}
    for _ in range(rounds):
        for concurrency in concurrencies:
            for version, tree in trees.items():
                runs[version][concurrency].append(one_round(tree, model, requests, concurrency))
    table = []
    for concurrency in concurrencies:
        best = {v: min(runs[v][concurrency], key=lambda r: r["cpu_us"]) for v in trees}
        table.append(
            {
                "concurrency": concurrency,
                "revision": best["revision"],
                "working_tree": best["working tree"],
                "cpu_ratio": best["revision"]["cpu_us"] / best["working tree"]["cpu_us"],
            }
        )
    return {"model": model, "requests_per_round": requests, "rounds": rounds, "table": table, "runs": runs}


def _default_command(results: dict[str, Any]) -> str:  # results from before the command was recorded
    return f"python -m bench.ab_inprocess {results['revision_name']}{' --quick' if results['quick'] else ''}"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# A/B in-process: `{results['revision_name']}` against the working tree, {results['model']}",
        "",
        f"`{results.get('command') or _default_command(results)}`:"
        f" revision `{results['revision']}`, working tree `{meta['git_commit']}`; {meta['cpu']},"
        f" load average {meta['load_before']:.2f} before and {meta['load_after']:.2f} after; best of"
        f" {results['rounds']} interleaved rounds of {results['requests_per_round']} requests, one digit PNG"
        " each.",
        "",
        "| concurrency | revision µs CPU/request | working tree µs CPU/request | speed-up (CPU) |"
        " revision req/s | working tree req/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["table"]:
        a, b = row["revision"], row["working_tree"]
        lines.append(
            f"| {row['concurrency']} | {a['cpu_us']:.0f} | {b['cpu_us']:.0f} | {row['cpu_ratio']:.2f}× |"
            f" {a['req_per_s']:.0f} | {b['req_per_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab_inprocess")
    parser.add_argument("revision")
    parser.add_argument("--quick", action="store_true", help="300 requests x 3 rounds (default 2000 x 5)")
    parser.add_argument("--model", default="lenet5-mnist")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--requests", type=int, default=None, help="per round (overrides the default)")
    parser.add_argument("--rounds", type=int, default=None, help="per version (overrides the default)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    requests, rounds = (300, 3) if args.quick else (2000, 5)
    requests, rounds = args.requests or requests, args.rounds or rounds
    repository = os.environ.get("POOLSERVE_REPOSITORY")  # a model outside model_repository, e.g. the ResNet
    if repository:  # each round runs in its version's directory: a relative path would point into it
        os.environ["POOLSERVE_REPOSITORY"] = str(Path(repository).resolve())
    shown = f"POOLSERVE_REPOSITORY={Path(repository).resolve().relative_to(ROOT)} " if repository else ""
    meta = run_metadata() | {"load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="ab-inprocess-") as tmp:
        base = Path(tmp)
        commit = export(args.revision, base)
        results = measure(base, args.model, args.concurrency, requests, rounds)
    meta["load_after"] = os.getloadavg()[0]
    results = {
        "meta": meta,
        "command": f"{shown}python -m bench.ab_inprocess {' '.join(sys.argv[1:])}",
        "quick": args.quick,
        "revision_name": args.revision,
        "revision": commit,
    } | results
    save_results("ab_inprocess", results, markdown(results), args.out, args.quick)


if __name__ == "__main__":
    main()
