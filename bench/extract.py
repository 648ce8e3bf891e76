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
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.processes import rss_bytes
from bench.soak import free_port, start_server
from extract.run import EngineName, ExtractRequest, run_job

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCH_REPOSITORY = ROOT / ".bench-repository"
DATA = ROOT / "tests" / "data"


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()


def _job(work: Path, label: str, **options: Any) -> float:
    """Seconds for one whole ``poolserve extract`` job (listing, model load and all)."""
    out = work / label
    started = time.perf_counter()
    run_job(ExtractRequest(output=out, **options))
    return time.perf_counter() - started


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
    best_batch = int(raw["best_batch_size"])  # type: ignore[call-overload]
    seconds = _job(
        work, "resnet", name=NAME, version=None, images=str(photos), boxes=None,
        repository=BENCH_REPOSITORY, batch_size=best_batch, workers=1, threads=1,
    )  # fmt: skip
    local = count / seconds
    return {"raw_ort": raw, "images": count, "local_images_per_s": local,
            "ratio_to_raw_ort": local / float(raw["best_images_per_s"])}  # type: ignore[arg-type]  # fmt: skip


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

    def boxes_per_s(label: str, engine: EngineName, **options: Any) -> float:
        return boxes / _job(work, label, engine=engine, **common, **options)

    local = boxes_per_s("local", "local", batch_size=64, workers=1)
    port = free_port()
    server = start_server(port)
    try:
        http = {
            f"batch {b}, concurrency {c}": boxes_per_s(
                f"http-{b}-{c}", "http", server=f"http://127.0.0.1:{port}", batch_size=b, workers=c
            )
            for b, c in http_settings
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    ray = boxes_per_s("ray", "ray", batch_size=64, workers=2, shard_size=max(1, copies * 5 // 4))
    best_http = max(http.values())
    return {"images": copies * 5, "boxes": boxes, "local_boxes_per_s": local, "http_boxes_per_s": http,
            "local_over_best_http": local / best_http, "ray_boxes_per_s": ray,
            "ray_over_local": ray / local}  # fmt: skip


def rss(work: Path, count: int) -> dict[str, Any]:
    """Resident memory of this process, sampled every 0.2 s while the local engine runs over ``count``
    digit images (the 100 committed ones, copied)."""
    folder = work / "many-digits"
    folder.mkdir()
    digits = sorted((DATA / "digits").glob("*.png"))
    for n in range(count):
        shutil.copy(digits[n % len(digits)], folder / f"{n:06d}.png")
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        start = time.perf_counter()
        while not done.wait(0.2):
            samples.append((time.perf_counter() - start, rss_bytes([os.getpid()])))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        seconds = _job(work, "rss", name="lenet5-mnist", version=None, images=str(folder), boxes=None,
                       batch_size=64, workers=1, shard_size=1000)  # fmt: skip
    finally:
        done.set()
        sampler.join()
    mib = [r / 2**20 for _, r in samples]
    tenth = mib[len(mib) // 10 :]  # after the first tenth: model loaded, first shards written
    return {"images": count, "seconds": seconds, "images_per_s": count / seconds,
            "rss_mib_after_first_tenth": {"min": min(tenth), "max": max(tenth)},
            "rss_mib_samples": [round(m, 1) for m in mib]}  # fmt: skip


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
            "resnet": resnet(work, args.photos, seconds_per_batch=2.0),
            "digits_region": digits_region(work, args.canvas_copies, [(8, 2), (32, 2), (64, 4)]),
            "rss": rss(work, args.images_for_rss),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "rss"}, indent=2))


if __name__ == "__main__":
    main()
