"""``poolserve extract`` measured: ``python -m bench.extract [--images-for-rss N]``.

- ResNet-size classifier (``bench/resnet.py``'s model, built into ``.bench-repository/``): local engine
  images/s over JPEG photos ÷ raw onnxruntime at its best batch (``bench/raw_ort.py``), both with one
  onnxruntime intra-op thread; the engine decodes in one more thread.
- Shipped digit region model over canvases of held-out digits: boxes/s of the local engine ÷ the best
  ``/v1/features`` throughput over HTTP (the http engine against ``poolserve serve``, several batch
  sizes and concurrencies), and the ray engine ÷ local on the same cores, Ray's start-up included.
- RSS of the local engine sampled while it runs over N digit images (memory must not grow with N).

Writes ``bench/results/extract.json`` (with the git commit) and ``extract.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.processes import descendants, rss_bytes
from bench.soak import free_port, start_server
from poolserve.extract.pipeline import Progress
from poolserve.extract.run import ExtractRequest, run_job

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCH_REPOSITORY = ROOT / ".bench-repository"
DATA = ROOT / "tests" / "data"
RUNS = 2  # of each digit-region job, the best kept


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()


@dataclass(frozen=True)
class Timing:
    seconds: float  # the whole job: listing, model load, every shard
    cpu_seconds: float  # this process's CPU time over the job (all of it for the local engine)
    steady_images_per_s: float  # from the first finished batch (or Ray shard) to the last
    steady_boxes_per_s: float


def _best_of(runs: int, work: Path, label: str, **options: Any) -> Timing:
    """The fastest of ``runs`` jobs (by steady rate): on a shared host, slower runs measure the others."""
    timings = [_job(work, f"{label}-{n}", **options) for n in range(runs)]
    return max(timings, key=lambda t: t.steady_images_per_s)


def _job(work: Path, label: str, **options: Any) -> Timing:
    """One whole ``poolserve extract`` job, timed end to end and in its steady state."""
    events: list[tuple[float, Progress]] = []
    cpu_started, started = time.process_time(), time.perf_counter()
    run_job(
        ExtractRequest(output=work / label, **options),
        on_progress=lambda p: events.append((time.perf_counter(), p)),
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    span = events[-1][0] - events[0][0] if len(events) > 1 else float("nan")
    after_first = [p for _, p in events[1:]]
    return Timing(
        seconds,
        cpu_seconds,
        sum(p.images for p in after_first) / span,
        sum(p.boxes for p in after_first) / span,
    )


def _photos(folder: Path, count: int) -> Path:
    """Smooth random 320x240 JPEG 'photos': decoding and resizing cost what a camera image's would."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in range(count):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((320, 240), Image.Resampling.BICUBIC)
        image.save(folder / f"photo-{n:05d}.jpg", quality=90)
    return folder


def resnet(work: Path, count: int, seconds_per_batch: float) -> dict[str, Any]:
    from bench.raw_ort import measure
    from bench.resnet import NAME, write_entry

    entry = BENCH_REPOSITORY / NAME / "1"
    if not (entry / "manifest.json").exists():
        write_entry(BENCH_REPOSITORY)
    os.environ["BENCH_ORT_THREADS"] = "1"
    raw = measure(entry, seconds_per_batch)
    photos = _photos(work / "photos", count)
    best = float(raw["best_images_per_s"])  # type: ignore[arg-type]
    options: dict[str, Any] = {"name": NAME, "version": None, "boxes": None, "repository": BENCH_REPOSITORY,
                               "batch_size": int(raw["best_batch_size"]), "workers": 1, "threads": 1}  # type: ignore[call-overload]  # fmt: skip
    _job(work, "resnet-warm-up", images=str(photos / "photo-0000[0-3].jpg"), **options)  # imports, caches
    timing = _best_of(RUNS, work, "resnet", images=str(photos), **options)
    return {"raw_ort": raw, "images": count, "local": asdict(timing),
            "steady_ratio_to_raw_ort": timing.steady_images_per_s / best,
            "end_to_end_ratio_to_raw_ort": count / timing.seconds / best}  # fmt: skip


def _canvases(folder: Path, copies: int) -> tuple[Path, Path, int]:
    """``copies`` of each committed canvas, with their boxes as JSON Lines; returns the box count too."""
    folder.mkdir(parents=True)
    index = json.loads((DATA / "canvases" / "canvases.json").read_text())
    lines, boxes = [], 0
    for copy in range(copies):
        for canvas in index["canvases"]:
            name = f"{copy:04d}-{canvas['file']}"
            shutil.copy(DATA / "canvases" / canvas["file"], folder / name)
            lines.append(json.dumps({"image": name, "boxes": canvas["boxes"]}))
            boxes += len(canvas["boxes"])
    jsonl = folder.parent / "canvases.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    return folder, jsonl, boxes


def digits_region(work: Path, copies: int, http_settings: list[tuple[int, int]]) -> dict[str, Any]:
    images, jsonl, boxes = _canvases(work / "canvases", copies)
    common: dict[str, Any] = {
        "name": "digits-roialign",
        "version": None,
        "images": str(images),
        "boxes": jsonl,
    }
    local = _best_of(RUNS, work, "local", engine="local", batch_size=64, workers=1, **common)
    port = free_port()
    server = start_server(port)
    try:
        http = {
            f"batch {b}, concurrency {c}": _best_of(
                RUNS, work, f"http-{b}-{c}", engine="http", server=f"http://127.0.0.1:{port}", batch_size=b,
                workers=c, **common,
            ).steady_boxes_per_s
            for b, c in http_settings
        }  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Small shards: Ray reports per shard, and the steady rate counts from the first one finished.
    ray = _best_of(RUNS, work, "ray", engine="ray", batch_size=64, workers=2, shard_size=50, **common)
    return {"images": copies * 5, "boxes": boxes, "local": asdict(local), "http_boxes_per_s": http,
            "local_over_best_http": local.steady_boxes_per_s / max(http.values()), "ray": asdict(ray),
            "ray_over_local_steady": ray.steady_boxes_per_s / local.steady_boxes_per_s,
            "ray_over_local_end_to_end": local.seconds / ray.seconds}  # fmt: skip


def rss(work: Path, count: int) -> dict[str, Any]:
    """Resident memory of a ``poolserve extract`` process (and its children), sampled every 0.2 s while it
    runs the local engine over ``count`` digit images (the 100 committed ones, copied)."""
    folder = work / "many-digits"
    folder.mkdir()
    digits = sorted((DATA / "digits").glob("*.png"))
    for n in range(count):
        shutil.copy(digits[n % len(digits)], folder / f"{n:06d}.png")
    argv = [sys.executable, "-m", "poolserve", "extract", "lenet5-mnist", "--images", str(folder),
            "--output", str(work / "rss"), "--batch-size", "64", "--workers", "1"]  # fmt: skip
    started = time.perf_counter()
    job = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, int]] = []
    while job.poll() is None:
        samples.append((time.perf_counter() - started, rss_bytes(descendants(job.pid))))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if job.returncode != 0:
        raise RuntimeError(f"poolserve extract exited {job.returncode}")
    mib = [r / 2**20 for _, r in samples if r]
    quarters = {f"{q * 25}%": mib[min(len(mib) - 1, q * len(mib) // 4)] for q in (1, 2, 3, 4)}
    return {"images": count, "seconds": seconds, "images_per_s": count / seconds,
            "rss_mib_at": quarters, "rss_mib_peak": max(mib),
            "rss_mib_samples": [round(m, 1) for m in mib]}  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    resnet, region, memory = results["resnet"], results["digits_region"], results["rss"]
    raw = resnet["raw_ort"]
    at = memory["rss_mib_at"]
    rows = [
        (f"ResNet-size, raw onnxruntime, best batch ({raw['best_batch_size']})",
         f"{raw['best_images_per_s']:.2f} images/s"),
        (f"ResNet-size, local engine, {resnet['images']} JPEGs, steady / whole job",
         f"{resnet['local']['steady_images_per_s']:.2f} / "
         f"{resnet['images'] / resnet['local']['seconds']:.2f} images/s"),
        ("**ratio local / raw onnxruntime**, steady / whole job",
         f"**{resnet['steady_ratio_to_raw_ort']:.2f}** / {resnet['end_to_end_ratio_to_raw_ort']:.2f}"),
        (f"digit regions, local engine ({region['images']} images, {region['boxes']} boxes), steady",
         f"{region['local']['steady_boxes_per_s']:.0f} boxes/s"),
        ("digit regions, local engine, CPU time per box (whole job, one process)",
         f"{1e3 * region['local']['cpu_seconds'] / region['boxes']:.2f} ms"),
        *((f"digit regions, http engine, {k}, steady", f"{v:.0f} boxes/s")
          for k, v in region["http_boxes_per_s"].items()),
        ("**ratio local / best HTTP**", f"**{region['local_over_best_http']:.2f}**"),
        ("digit regions, ray engine (2 actors), steady",
         f"{region['ray']['steady_boxes_per_s']:.0f} boxes/s"),
        ("**ratio ray / local**, steady / whole job (Ray start-up included)",
         f"**{region['ray_over_local_steady']:.2f}** / {region['ray_over_local_end_to_end']:.2f}"),
        (f"RSS of `poolserve extract` over {memory['images']} digit images at 25/50/75/100% of the job",
         " / ".join(f"{v:.0f}" for v in at.values()) + f" MiB ({memory['images_per_s']:.0f} images/s)"),
    ]  # fmt: skip
    start, end = results["load_average_at_start"][0], results["load_average_at_end"][0]
    title = f"# poolserve extract, measured (commit {results['commit'][:12]}, {results['cpus']} CPUs)"
    head = [title, "", f"Host load average (1 min): {start:.1f} at the start, {end:.1f} at the end.", "",
            "| measurement | value |", "| --- | --- |"]  # fmt: skip
    return "\n".join(head + [f"| {k} | {v} |" for k, v in rows]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extract")
    parser.add_argument("--photos", type=int, default=160)
    parser.add_argument("--canvas-copies", type=int, default=200, help="5 canvases, 11 boxes, per copy")
    parser.add_argument("--images-for-rss", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        work = Path(tmp)
        results = {
            "commit": _commit(),
            "cpus": os.cpu_count(),
            # Load from other users of the host: above the CPU count, rates measure CPU share too.
            "load_average_at_start": os.getloadavg(),
            "resnet": resnet(work, args.photos, seconds_per_batch=2.0),
            "digits_region": digits_region(work, args.canvas_copies, [(8, 2), (32, 2), (64, 4)]),
            "rss": rss(work, args.images_for_rss),
        }
    results["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "extract.md").write_text(markdown(results))
    print(json.dumps({k: v for k, v in results.items() if k != "rss"}, indent=2))


if __name__ == "__main__":
    main()
