"""The most CPU one request within the default limits can cost, per shipped model.

    python -m bench.worst_request

A request is bounded by ``max_images_per_request`` (64), ``max_request_pixels`` (2 x 4096^2 decoded
pixels, from the headers), ``max_body_bytes`` (16 MiB) and ``max_boxes_per_request`` (1024). The costly
request within them is the one that decodes the whole pixel budget and then runs the largest batch:
64 images of 724 x 724 (the budget split evenly) in several encodings, for region models with 1024
whole-image boxes (16 per image). Each case runs the service's own stages in process, no HTTP: decode +
preprocess (``decode_and_preprocess``, reduced JPEG decoding on, as served) and the model's batch handler
(onnxruntime, default threads). Figures are CPU seconds of the whole process (``time.process_time``:
onnxruntime's threads included) and wall seconds, the smaller of two runs. Writes
bench/results/worst_request.json and .md with the git commit and the machine's core count.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from bench.reduced_jpeg import RESULTS, git_commit
from bench.suite import ROOT
from repository.manifest import Manifest, Task
from repository.store import discover, latest_versions, read_manifest, verified_model_path
from service.imaging.preprocess import decode_and_preprocess, map_boxes
from service.runtime.handlers import ClassificationHandler, RegionHandler, RegionItem
from service.settings import Settings

LIMITS = Settings()
IMAGES = LIMITS.max_images_per_request
SIDE = int((LIMITS.max_request_pixels / IMAGES) ** 0.5)  # 724: 64 of them fill the pixel budget
BOXES_PER_IMAGE = LIMITS.max_boxes_per_request // IMAGES


def encodings() -> dict[str, bytes]:
    """One 724 x 724 picture per encoding: a digit's strokes over a gradient, and grain for the codecs."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    base = (x * 0.2 + y * 0.1 + rng.integers(0, 24, (SIDE, SIDE))).astype(np.uint8)
    rgb = Image.fromarray(np.stack([base, base[::-1], base.T], axis=2))
    out = {}
    for name, fmt, options in (
        ("PNG RGB", "PNG", {}),
        ("JPEG baseline q95", "JPEG", {"quality": 95}),
        ("JPEG progressive q95", "JPEG", {"quality": 95, "progressive": True}),
        ("WebP q90", "WEBP", {"quality": 90}),
        ("BMP RGB", "BMP", {}),
    ):
        buffer = io.BytesIO()
        rgb.save(buffer, format=fmt, **options)
        out[name] = buffer.getvalue()
    return out


def best(call: Callable[[], Any], runs: int = 2) -> tuple[float, float]:
    cpu, wall = float("inf"), float("inf")
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        call()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall


def handler_call(manifest: Manifest, session: ort.InferenceSession, blob: bytes) -> Callable[[], Any]:
    images, transforms = decode_and_preprocess(
        [blob] * IMAGES, manifest.preprocessing, LIMITS.max_image_pixels
    )
    if manifest.task is Task.CLASSIFICATION:
        classifier = ClassificationHandler(session, manifest)
        return lambda: classifier.run([images])
    whole = np.tile(np.asarray([[0, 0, SIDE, SIDE]], np.float32), (BOXES_PER_IMAGE, 1))
    boxes = [map_boxes(whole, t) for t in transforms]
    regions = RegionHandler(session, manifest)
    return lambda: regions.run([RegionItem(images, boxes)])


def main() -> None:
    blobs = encodings()
    rows: list[dict[str, Any]] = []
    for location in latest_versions(discover(ROOT / "model_repository")):
        manifest = read_manifest(location)
        session = ort.InferenceSession(
            str(verified_model_path(location, manifest)), providers=["CPUExecutionProvider"]
        )
        infer_cpu, infer_wall = best(handler_call(manifest, session, blobs["PNG RGB"]))
        for encoding, blob in blobs.items():
            body = len(blob) * IMAGES
            if body > LIMITS.max_body_bytes:
                rows.append({"model": location.name, "encoding": encoding, "body_bytes": body, "fits": False})
                continue
            decode_cpu, decode_wall = best(
                lambda blob=blob, spec=manifest.preprocessing: decode_and_preprocess(
                    [blob] * IMAGES,
                    spec,
                    LIMITS.max_image_pixels,
                    LIMITS.max_request_pixels,
                    LIMITS.reduced_jpeg_decode,
                )
            )
            rows.append(
                {
                    "model": location.name,
                    "encoding": encoding,
                    "body_bytes": body,
                    "fits": True,
                    "decode_cpu_s": round(decode_cpu, 3),
                    "inference_cpu_s": round(infer_cpu, 3),
                    "total_cpu_s": round(decode_cpu + infer_cpu, 3),
                    "total_wall_s": round(decode_wall + infer_wall, 3),
                }
            )
        print(location.name, "done", flush=True)
    worst = max((r for r in rows if r["fits"]), key=lambda r: r["total_cpu_s"])
    result = {
        "commit": git_commit(),
        "cpu_count": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "request": f"{IMAGES} images of {SIDE}x{SIDE}, {BOXES_PER_IMAGE * IMAGES} boxes on region models",
        "limits": {
            k: getattr(LIMITS, k)
            for k in (
                "max_images_per_request",
                "max_request_pixels",
                "max_image_pixels",
                "max_body_bytes",
                "max_boxes_per_request",
                "max_concurrent_decodes",
                "reduced_jpeg_decode",
            )
        },
        "worst": worst,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worst_request.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "Worst request within the default limits "
        f"(`python -m bench.worst_request`, commit {result['commit']},",
        f"{result['cpu_count']} cores, onnxruntime {result['onnxruntime']}): {result['request']}.",
        "",
        "| model | encoding | body MB | decode CPU s | inference CPU s | total CPU s | total wall s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if not r["fits"]:
            lines.append(
                f"| {r['model']} | {r['encoding']} | {r['body_bytes'] / 1e6:.1f} "
                "| over max_body_bytes | | | |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['encoding']} | {r['body_bytes'] / 1e6:.1f} | {r['decode_cpu_s']:.2f} "
            f"| {r['inference_cpu_s']:.2f} | {r['total_cpu_s']:.2f} | {r['total_wall_s']:.2f} |"
        )
    (RESULTS / "worst_request.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
