"""The most CPU one request within the default limits can cost, per shipped model.

    python -m bench.worst_request

A request is bounded by ``max_images_per_request`` (64), ``max_request_pixels`` (2 x 4096^2 decoded
pixels, from the headers), ``max_request_input_pixels`` (4 Mi pixels of model input: 16 images of
512 x 512), ``max_body_bytes`` (16 MiB), ``max_boxes_per_request`` (1024) and, on region models,
``max_request_roi_cost`` (the cells the RoI op reads for all of a request's boxes, per channel). The
costly request within them decodes the whole pixel budget and then runs the most images the model takes:
as many images as ``max_request_input_pixels`` allows (at most 64), splitting the pixel budget evenly, in
several encodings. Region models get 1024 boxes in the costlier of two shapes within the RoI budget: as
many of the largest boxes the box policy allows (past every edge of the image by ``MAX_OVERHANG``) as the
budget pays for, the others the largest boxes at the least cost a box has; or 1024 equal boxes, each the
largest that 1/1024 of the budget pays for. Where the budget does not bind, both are 1024 of the largest
boxes. Each case runs the service's own stages in process, no HTTP: decode + preprocess
(``decode_and_preprocess``, reduced JPEG decoding on, as served) and the model's batch handler
(onnxruntime, default threads). Figures are CPU seconds of the whole process (``time.process_time``:
onnxruntime's threads included) and wall seconds, the smaller of two runs. Writes
bench/results/worst_request.json and .md with the git commit and core count.
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
from poolserve.repository.manifest import Manifest, Task
from poolserve.repository.store import discover, latest_versions, read_manifest, verified_model_path
from poolserve.service.imaging.preprocess import ResizeTransform, decode_and_preprocess, map_boxes
from poolserve.service.runtime.batch_handlers import ClassificationHandler, RegionHandler, RegionItem
from poolserve.service.runtime.model_io import ClassifierIO, RegionIO
from poolserve.service.runtime.region_inputs import (
    MAX_OVERHANG,
    BoxFrame,
    check_region_inputs,
    check_roi_cost,
    roi_box_costs,
)
from poolserve.service.settings import Settings

LIMITS = Settings()


def images_for(manifest: Manifest) -> int:
    per_image = manifest.preprocessing.height * manifest.preprocessing.width
    return min(LIMITS.max_images_per_request, LIMITS.max_request_input_pixels // per_image)


def encodings(images: int) -> dict[str, bytes]:
    """One picture per encoding, ``images`` of which fill the pixel budget: a gradient with grain (costly
    for every codec), and a smooth one as PNG (the grainy PNG would not fit the body limit)."""
    side = int((LIMITS.max_request_pixels / images) ** 0.5)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side]
    smooth = (x * 0.2 + y * 0.1).astype(np.uint8)
    base = (smooth + rng.integers(0, 24, (side, side))).astype(np.uint8)
    rgb = Image.fromarray(np.stack([base, base[::-1], base.T], axis=2))
    out = {}
    buffer = io.BytesIO()
    Image.fromarray(np.stack([smooth, smooth[::-1], smooth.T], axis=2)).save(buffer, format="PNG")
    out["PNG RGB smooth"] = buffer.getvalue()
    for name, fmt, options in (
        ("PNG RGB grain", "PNG", {}),
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


def decode_call(manifest: Manifest, blobs: list[bytes]) -> Callable[[], Any]:
    def decode() -> Any:
        return decode_and_preprocess(
            blobs,
            manifest.preprocessing,
            LIMITS.max_image_pixels,
            LIMITS.max_request_pixels,
            LIMITS.reduced_jpeg_decode,
            LIMITS.max_request_input_pixels,
        )

    return decode


class SquareBoxes:
    """Square boxes centred on an image ``side`` pixels wide, by their share of the largest the box policy
    allows (past every edge by ``MAX_OVERHANG`` of the image), and what each costs the model's RoI op."""

    def __init__(self, manifest: Manifest, transform: ResizeTransform, side: int) -> None:
        assert manifest.roi is not None
        self.roi, self.transform, self.side = manifest.roi, transform, side

    def box(self, share: float) -> np.ndarray:
        """(1, 4) in the image's pixels; share 1 is the largest allowed box, 0 a point at the centre."""
        half, centre = share * (0.5 + MAX_OVERHANG) * self.side, self.side / 2
        return np.asarray([[centre - half, centre - half, centre + half, centre + half]], np.float32)

    def cost(self, share: float) -> int:
        return int(roi_box_costs(map_boxes(self.box(share), self.transform), self.roi)[0])

    def largest_costing(self, most: int) -> np.ndarray:
        """The largest of these boxes that costs at most ``most`` (a box's cost grows with its size)."""
        low, high = 0.0, 1.0
        if self.cost(high) <= most:
            return self.box(high)
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if self.cost(mid) <= most else (low, mid)
        return self.box(low)


def region_requests(
    manifest: Manifest, transforms: list[ResizeTransform], side: int
) -> dict[str, list[np.ndarray]]:
    """The two costliest shapes of ``max_boxes_per_request`` boxes within ``max_request_roi_cost``, by
    name, each as one (k, 4) array per image in the model input frame (the boxes dealt round the images).
    Each passes the box policy and the budget, as the server would check them."""
    assert manifest.roi is not None
    squares = SquareBoxes(manifest, transforms[0], side)
    count, budget = LIMITS.max_boxes_per_request, LIMITS.max_request_roi_cost
    most, least = squares.cost(1.0), squares.cost(0.0)
    if count * most <= budget:  # the budget does not bind
        shapes = {f"{count} largest": [squares.box(1.0)] * count}
    else:
        largest = max(0, min(count, (budget - count * least) // (most - least)))
        shapes = {
            f"{largest} largest, {count - largest} at the least cost": [squares.box(1.0)] * largest
            + [squares.largest_costing(least)] * (count - largest),
            f"{count} equal": [squares.largest_costing(budget // count)] * count,
        }
    frame, requests = BoxFrame.of(manifest), {}
    for name, boxes in shapes.items():
        dealt = [np.concatenate(boxes[i :: len(transforms)]) for i in range(len(transforms))]
        per_image = [map_boxes(b, t) for b, t in zip(dealt, transforms, strict=True)]
        flat = np.concatenate(per_image)
        indices = np.repeat(np.arange(len(per_image)), [len(b) for b in per_image])
        check_region_inputs(flat, indices, len(per_image), frame)
        check_roi_cost(flat, manifest.roi, budget)
        sides = sorted({round(float(b[0, 2] - b[0, 0])) for b in boxes})
        sizes = " and ".join(f"{s}²" for s in sides)
        cost = int(roi_box_costs(flat, manifest.roi).sum())
        requests[f"{name} ({sizes} px of {side}²; RoI cost {cost})"] = per_image
    return requests


def handler_calls(
    manifest: Manifest, session: ort.InferenceSession, blobs: list[bytes]
) -> dict[str, Callable[[], Any]]:
    """The request's inference, by the shape of its boxes (one, named ``""``, for a classifier)."""
    images, transforms = decode_call(manifest, blobs)()
    if manifest.task is Task.CLASSIFICATION:
        classifier = ClassificationHandler(session, ClassifierIO.of(manifest))
        return {"": lambda: classifier.run([images])}
    side = Image.open(io.BytesIO(blobs[0])).width
    regions = RegionHandler(session, RegionIO.of(manifest))

    def run(boxes: list[np.ndarray]) -> Callable[[], Any]:
        return lambda: regions.run([RegionItem(images, boxes)])

    return {shape: run(boxes) for shape, boxes in region_requests(manifest, transforms, side).items()}


def main() -> None:
    rows: list[dict[str, Any]] = []
    for location in latest_versions(discover(ROOT / "model_repository")):
        manifest = read_manifest(location)
        session = ort.InferenceSession(
            str(verified_model_path(location, manifest)), providers=["CPUExecutionProvider"]
        )
        images = images_for(manifest)
        blobs = encodings(images)
        calls = handler_calls(manifest, session, [blobs["PNG RGB smooth"]] * images)
        by_boxes = {shape: best(call) for shape, call in calls.items()}
        boxes, (infer_cpu, infer_wall) = max(by_boxes.items(), key=lambda item: item[1][0])
        for encoding, blob in blobs.items():
            body = len(blob) * images
            common = {
                "model": location.name,
                "images": images,
                "boxes": boxes,  # the costlier shape, "" for a classifier
                # every shape tried: inference CPU s
                "inference_cpu_s_by_boxes": {k: round(v[0], 3) for k, v in by_boxes.items() if k},
                "encoding": encoding,
                "body_bytes": body,
            }
            if body > LIMITS.max_body_bytes:
                rows.append({**common, "fits": False})
                continue
            decode_cpu, decode_wall = best(decode_call(manifest, [blob] * images))
            rows.append(
                {
                    **common,
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
        "request": "the pixel budget split over the most images the model takes; on region models "
        f"{LIMITS.max_boxes_per_request} boxes, the costlier of two shapes within max_request_roi_cost",
        "limits": {
            k: getattr(LIMITS, k)
            for k in (
                "max_images_per_request",
                "max_request_pixels",
                "max_request_input_pixels",
                "max_image_pixels",
                "max_body_bytes",
                "max_boxes_per_request",
                "max_request_roi_cost",
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
        "| model | images | boxes | encoding | body MB | decode CPU s | inference CPU s | total CPU s "
        "| total wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if not r["fits"]:
            lines.append(
                f"| {r['model']} | {r['images']} | {r['boxes'] or '—'} | {r['encoding']} "
                f"| {r['body_bytes'] / 1e6:.1f} | over max_body_bytes | | | |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['images']} | {r['boxes'] or '—'} | {r['encoding']} "
            f"| {r['body_bytes'] / 1e6:.1f} | {r['decode_cpu_s']:.2f} "
            f"| {r['inference_cpu_s']:.2f} | {r['total_cpu_s']:.2f} | {r['total_wall_s']:.2f} |"
        )
    shapes = [(r["model"], r["inference_cpu_s_by_boxes"]) for r in rows if r["encoding"] == "PNG RGB smooth"]
    lines += ["", "Region models, inference CPU s by box shape (the costlier one is in the table above):", ""]
    lines += [f"- {model}: {shape}: {cpu:.2f}" for model, by in shapes for shape, cpu in by.items()]
    (RESULTS / "worst_request.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
