"""How region-feature cost grows with boxes, images per batch and upload size.

    python -m bench.region_scaling [--quick]

(a) raw onnxruntime, in process, 1 intra-op thread: each shipped region model vs boxes per image and vs
images per batch; the RoI node's share from onnxruntime's profiler; digits-roipool also rewritten by
``poolserve.export.roipool_rewrite`` (MaxRoiPool as standard ops), outputs checked equal before timing.
(b) the service's own stages, called directly (no HTTP): decode + resize vs the upload's size (PNG and
JPEG canvases), box checks + mapping, the batch handler, and the JSON body (``features._json`` + orjson)
vs boxes. Writes bench/results/region_scaling.json and .md. Every figure is the best of several
alternating rounds: the host is shared, single figures drift by tens of percent.
"""

from __future__ import annotations

import collections
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import orjson
from PIL import Image

from bench.provenance import run_metadata
from bench.suite import ROOT
from poolserve.export.roipool_rewrite import rewrite_max_roi_pool
from poolserve.repository.manifest import Manifest
from poolserve.service.api.routes.features import _json
from poolserve.service.imaging.preprocess import decode_and_preprocess, map_boxes
from poolserve.service.runtime.batch_handlers import RegionHandler, RegionItem
from poolserve.service.runtime.model_io import RegionIO
from poolserve.service.runtime.region_inputs import BoxFrame, check_region_inputs
from poolserve.service.runtime.runtime import RegionOutput

MODELS = ("digits-roialign", "digits-roipool")
RESULTS = ROOT / "bench" / "results"
BOXES = (0, 1, 4, 16, 64, 256, 1024)
IMAGES = (1, 2, 8, 32)
UPLOADS = (112, 224, 448, 896, 1792)


def _session(proto: onnx.ModelProto, profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_profiling = profile
    # Profiles go to the temporary directory (read, then deleted), never into the working tree.
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "region_scaling_profile")
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _best_ms(calls: list[Callable[[], object]], rounds: int, budget_s: float = 0.05) -> list[float]:
    """Best-of-``rounds`` ms per call for each callable, rounds alternating between them."""
    for call in calls:
        call()
    reps = []
    for call in calls:
        start = time.perf_counter()
        call()
        reps.append(max(1, int(budget_s / max(time.perf_counter() - start, 1e-6))))
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, (call, n) in enumerate(zip(calls, reps, strict=True)):
            start = time.perf_counter()
            for _ in range(n):
                call()
            best[i] = min(best[i], (time.perf_counter() - start) / n * 1e3)
    return best


def _digit_boxes(
    rng: np.random.Generator, count: int, images: int, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Digit-sized boxes (an eighth to a third of the side) anywhere in the image."""
    extent = rng.uniform(size / 8, size / 3, (count, 2))
    corner = rng.uniform(0, size, (count, 2)) - extent / 2
    boxes = np.concatenate([corner, corner + extent], axis=1).astype(np.float32)
    return boxes, rng.integers(0, images, count).astype(np.int64)


def _feeds(rng: np.random.Generator, images: int, boxes: int) -> dict[str, np.ndarray]:
    coords, indices = _digit_boxes(rng, boxes, images, 112.0)
    pixels = rng.standard_normal((images, 1, 112, 112)).astype(np.float32)
    return {"images": pixels, "boxes": coords, "box_batch_indices": indices}


def _backbone_only(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph cut before the RoI node: what a request with no boxes costs the model."""
    roi = next(n for n in proto.graph.node if n.op_type in ("RoiAlign", "MaxRoiPool"))
    return onnx.utils.Extractor(onnx.shape_inference.infer_shapes(proto)).extract_model(
        ["images"], [roi.input[0]]
    )


def _fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    slope, intercept = np.polyfit(xs, ys, 1)
    predicted = slope * np.asarray(xs) + intercept
    residual = np.asarray(ys) - predicted
    r2 = 1 - float((residual**2).sum()) / float(((np.asarray(ys) - np.mean(ys)) ** 2).sum())
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2}


def _roi_share(session: ort.InferenceSession, feeds: dict[str, np.ndarray], runs: int = 10) -> float:
    for _ in range(runs):
        session.run(None, feeds)
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    by_op: dict[str, list[float]] = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]].append(event["dur"])
    totals = {op: sum(d) for op, d in by_op.items()}
    return sum(v for op, v in totals.items() if op in ("RoiAlign", "MaxRoiPool")) / sum(totals.values())


def raw_onnxruntime(rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for name in MODELS:
        proto = onnx.load(ROOT / "model_repository" / name / "1" / "model.onnx")
        variants = {"shipped": proto}
        if name == "digits-roipool":
            variants["rewritten"] = rewrite_max_roi_pool(proto)
        sessions = {k: _session(v) for k, v in variants.items()}
        backbone = _session(_backbone_only(proto))
        by_boxes = []
        for count in BOXES:
            if count == 0:
                image = {"images": _feeds(rng, 1, 1)["images"]}
                (ms,) = _best_ms([partial(backbone.run, None, image)], rounds)
                by_boxes.append({"boxes": 0, **{k: ms for k in sessions}})
                continue
            feeds = _feeds(rng, 1, count)
            outputs = [s.run(None, feeds) for s in sessions.values()]
            assert all(np.array_equal(a, b) for o in outputs[1:] for a, b in zip(o, outputs[0], strict=True))
            times = _best_ms([partial(s.run, None, feeds) for s in sessions.values()], rounds)
            row: dict[str, Any] = {"boxes": count, **dict(zip(sessions, times, strict=True))}
            row["roi_share"] = _roi_share(_session(proto, profile=True), feeds)
            by_boxes.append(row)
            print(name, row, flush=True)
        by_images = []
        for images in IMAGES:
            feeds = _feeds(rng, images, 4 * images)
            times = _best_ms([partial(s.run, None, feeds) for s in sessions.values()], rounds)
            by_images.append(
                {"images": images, "boxes": 4 * images, **dict(zip(sessions, times, strict=True))}
            )
            print(name, by_images[-1], flush=True)
        fits = {k: _fit([r["boxes"] for r in by_boxes], [r[k] for r in by_boxes]) for k in sessions}
        image_fits = {k: _fit([r["images"] for r in by_images], [r[k] for r in by_images]) for k in sessions}
        out[name] = {
            "by_boxes": by_boxes,
            "by_images": by_images,
            "fit_boxes_ms": fits,
            "fit_images_ms": image_fits,
        }
    return out


def _canvas(side: int, fmt: str, rng: np.random.Generator) -> bytes:
    pixels = np.zeros((side, side), np.uint8)
    for _ in range(6):  # a few bright strokes, so PNG compression sees digit-like content
        y, x = rng.integers(0, side - side // 6, 2)
        pixels[y : y + side // 6, x : x + side // 24 + 1] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def service_stages(rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    out: dict[str, Any] = {}
    manifest = Manifest.model_validate_json(
        (ROOT / "model_repository" / "digits-roialign" / "1" / "manifest.json").read_bytes()
    )
    uploads = []
    for side in UPLOADS:
        row: dict[str, Any] = {"side": side, "megapixels": side * side / 1e6}
        for fmt in ("PNG", "JPEG"):
            blob = _canvas(side, fmt, rng)
            (row[fmt.lower()],) = _best_ms(
                [partial(decode_and_preprocess, [blob], manifest.preprocessing, 1 << 26)], rounds
            )
            row[f"{fmt.lower()}_bytes"] = len(blob)
        uploads.append(row)
        print("upload", row, flush=True)
    out["decode_preprocess_by_upload"] = uploads
    out["fit_decode_per_megapixel_ms"] = {
        f: _fit([r["megapixels"] for r in uploads], [r[f] for r in uploads]) for f in ("png", "jpeg")
    }
    blob = _canvas(448, "PNG", rng)
    images, transforms = decode_and_preprocess([blob], manifest.preprocessing, 1 << 26)
    per_model: dict[str, Any] = {}
    for name in MODELS:
        path = ROOT / "model_repository" / name / "1"
        model_manifest = Manifest.model_validate_json((path / "manifest.json").read_bytes())
        handler = RegionHandler(_session(onnx.load(path / "model.onnx")), RegionIO.of(model_manifest))
        rows = []
        for count in BOXES:
            boxes, _ = _digit_boxes(rng, count, 1, 448.0)
            mapped = [map_boxes(boxes, transforms[0])]
            result = handler.run([RegionItem(images, mapped)])[0]
            output = RegionOutput(result.features, result.scores, scores_are_probabilities=False)

            def checks(b: np.ndarray = boxes, m: Manifest = model_manifest) -> None:
                frame = map_boxes(b, transforms[0])
                check_region_inputs(frame, np.zeros(len(frame), np.int64), 1, BoxFrame.of(m))

            def body(b: np.ndarray = boxes, o: RegionOutput = output, m: Manifest = model_manifest) -> bytes:
                return orjson.dumps(_json(m, [b], o, "float32", 5), option=orjson.OPT_SERIALIZE_NUMPY)

            times = _best_ms([checks, partial(handler.run, [RegionItem(images, mapped)]), body], rounds)
            rows.append({"boxes": count, **dict(zip(("checks_map", "handler", "json"), times, strict=True))})
            print(name, rows[-1], flush=True)
        fits = {
            k: _fit([r["boxes"] for r in rows], [r[k] for r in rows])
            for k in ("checks_map", "handler", "json")
        }
        per_model[name] = {"by_boxes": rows, "fit_boxes_ms": fits}
    out["stages_by_boxes"] = per_model
    return out


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Region features: cost vs boxes, images and upload size",
        "",
        f"`python -m bench.region_scaling`, run {results['meta']['started']} at commit "
        f"`{results['meta']['git_commit']}` on {results['meta']['cpu']} ({results['meta']['cores']} cores); "
        f"onnxruntime {ort.__version__}, 1 intra-op thread; best of {results['rounds']} alternating rounds "
        "(single figures drift ±30 % on a shared host).",
        "",
        "## (a) raw onnxruntime, one image, digit-sized boxes (ms per session.run)",
        "",
        "| model | boxes | shipped | MaxRoiPool rewritten | RoI node share |",
        "|---|---:|---:|---:|---:|",
    ]
    raw = results["raw"]
    for name, data in raw.items():
        for r in data["by_boxes"]:
            rewritten = f"{r['rewritten']:.3f}" if "rewritten" in r else ""
            share = f"{100 * r['roi_share']:.0f} %" if "roi_share" in r else "(backbone only)"
            lines.append(f"| {name} | {r['boxes']} | {r['shipped']:.3f} | {rewritten} | {share} |")
    lines += ["", "Linear fits, time = intercept + slope x boxes:", ""]
    for name, data in raw.items():
        for k, f in data["fit_boxes_ms"].items():
            lines.append(
                f"- {name} ({k}): {1e3 * f['slope']:.1f} us per box + {f['intercept']:.3f} ms, "
                f"R² = {f['r2']:.4f}"
            )
    lines += [
        "",
        "## images per batch (4 boxes per image, ms per session.run)",
        "",
        "| model | images | shipped | rewritten |",
        "|---|---:|---:|---:|",
    ]
    for name, data in raw.items():
        for r in data["by_images"]:
            rewritten = f"{r['rewritten']:.3f}" if "rewritten" in r else ""
            lines.append(f"| {name} | {r['images']} | {r['shipped']:.3f} | {rewritten} |")
        for k, f in data["fit_images_ms"].items():
            lines.append(f"\n{name} ({k}): {f['slope']:.3f} ms per image (+4 boxes), R² = {f['r2']:.4f}\n")
    stages = results["service"]
    lines += [
        "",
        "## (b) service stages: decode + preprocess vs upload (ms, one image)",
        "",
        "| side px | MP | PNG | JPEG | PNG bytes | JPEG bytes |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in stages["decode_preprocess_by_upload"]:
        lines.append(
            f"| {r['side']} | {r['megapixels']:.3f} | {r['png']:.3f} | {r['jpeg']:.3f} | "
            f"{r['png_bytes']} | {r['jpeg_bytes']} |"
        )
    for fmt, f in stages["fit_decode_per_megapixel_ms"].items():
        lines.append(
            f"\n{fmt}: {f['slope']:.2f} ms per megapixel + {f['intercept']:.3f} ms, R² = {f['r2']:.4f}\n"
        )
    lines += [
        "",
        "## (b) service stages vs boxes (ms, one 448 px image)",
        "",
        "| model | boxes | checks + map_boxes | handler (session) | JSON body |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, data in stages["stages_by_boxes"].items():
        for r in data["by_boxes"]:
            lines.append(
                f"| {name} | {r['boxes']} | {r['checks_map']:.3f} | {r['handler']:.3f} | {r['json']:.3f} |"
            )
        for k, f in data["fit_boxes_ms"].items():
            lines.append(
                f"\n{name} {k}: {1e3 * f['slope']:.2f} us per box + {f['intercept']:.3f} ms, "
                f"R² = {f['r2']:.4f}\n"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    rounds = 3 if "--quick" in sys.argv else 5
    meta = run_metadata()
    results = {"meta": meta, "rounds": rounds, "onnxruntime": ort.__version__, "raw": raw_onnxruntime(rounds)}
    results["service"] = service_stages(rounds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "region_scaling.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "region_scaling.md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main()
