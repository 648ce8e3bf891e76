"""What decoding large JPEGs at reduced scale (``Image.draft``) does to the answers.

    python -m bench.reduced_jpeg

The held-out digit PNGs (tests/data/digits) and canvases (tests/data/canvases, with their true boxes)
are scaled up and re-encoded as JPEG (quality 90), as a phone or a scanner would send them, then run
through the service's own decode + preprocess with ``reduced_jpeg`` off and on and through each shipped
digit model (onnxruntime, in process). Reports accuracy both ways, how often the top-1 answers agree, the
largest probability difference and, for region models, the cosine similarity of the features. Writes
bench/results/reduced_jpeg.json and .md, with the git commit they were measured at.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from PIL import Image

from bench.suite import ROOT
from poolserve.repository.manifest import Manifest
from poolserve.repository.store import discover, latest_versions, read_manifest, verified_model_path
from poolserve.service.imaging.preprocess import decode_and_preprocess, map_boxes
from poolserve.service.runtime.batch_handlers import ClassificationHandler, RegionHandler, RegionItem
from poolserve.service.runtime.model_io import ClassifierIO, RegionIO
from poolserve.service.runtime.postprocess import softmax

RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "tests" / "data"
CLASSIFIERS = ("lenet5-mnist", "lenet5-gap-mnist")
REGION_MODELS = ("digits-roialign", "digits-roipool")
DIGIT_SIDES = (112, 448, 1792)  # 4x, 16x, 64x the 28-pixel digits: draft scale 1/4, 1/8, 1/8
CANVAS_FACTORS = (2, 4, 8)  # 112-pixel canvases to 224, 448, 896: draft scale 1/2, 1/4, 1/8
MAX_PIXELS = 1 << 26


def git_commit() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return head.strip() + ("+dirty" if dirty.strip() else "")


def as_jpeg(path: Path, factor: float) -> bytes:
    image = Image.open(path)
    side = (round(image.width * factor), round(image.height * factor))
    buffer = io.BytesIO()
    image.resize(side, Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def models() -> dict[str, tuple[Manifest, ort.InferenceSession]]:
    loaded = {}
    for location in latest_versions(discover(ROOT / "model_repository")):
        if location.name in CLASSIFIERS + REGION_MODELS:
            manifest = read_manifest(location)
            path = verified_model_path(location, manifest)
            loaded[location.name] = (
                manifest,
                ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]),
            )
    return loaded


def classifier_rows(name: str, manifest: Manifest, session: ort.InferenceSession) -> list[dict[str, Any]]:
    handler = ClassificationHandler(session, ClassifierIO.of(manifest))
    digits = sorted((DATA / "digits").glob("*.png"))
    labels = [p.stem.split("_")[0] for p in digits]
    rows = []
    for side in DIGIT_SIDES:
        blobs = [as_jpeg(p, side / 28) for p in digits]
        probabilities = {}
        for reduced in (False, True):
            batch, _ = decode_and_preprocess(blobs, manifest.preprocessing, MAX_PIXELS, reduced_jpeg=reduced)
            probabilities[reduced] = handler.run([batch])[0].probabilities
        top = {k: [manifest.labels[i] for i in v.argmax(axis=1)] for k, v in probabilities.items()}
        rows.append(
            {
                "model": name,
                "input": f"{len(digits)} digits as {side}x{side} JPEG",
                "n": len(digits),
                "accuracy_full": float(np.mean([t == y for t, y in zip(top[False], labels, strict=True)])),
                "accuracy_reduced": float(np.mean([t == y for t, y in zip(top[True], labels, strict=True)])),
                "top1_agreement": float(
                    np.mean([a == b for a, b in zip(top[False], top[True], strict=True)])
                ),
                "max_probability_difference": float(np.abs(probabilities[True] - probabilities[False]).max()),
            }
        )
    return rows


def region_rows(name: str, manifest: Manifest, session: ort.InferenceSession) -> list[dict[str, Any]]:
    handler = RegionHandler(session, RegionIO.of(manifest))
    index = orjson.loads((DATA / "canvases" / "canvases.json").read_bytes())["canvases"]
    labels = [label for c in index for label in c["labels"]]
    rows = []
    for factor in CANVAS_FACTORS:
        outputs: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
        for reduced in (False, True):
            features, scores = [], []
            for canvas in index:
                blob = as_jpeg(DATA / "canvases" / canvas["file"], factor)
                boxes = np.asarray(canvas["boxes"], np.float32).reshape(-1, 4) * factor
                images, transforms = decode_and_preprocess(
                    [blob], manifest.preprocessing, MAX_PIXELS, reduced_jpeg=reduced
                )
                (result,) = handler.run([RegionItem(images, [map_boxes(boxes, transforms[0])])])
                features.append(result.features[0])
                assert result.scores is not None
                scores.append(softmax(result.scores[0]))
            outputs[reduced] = (np.concatenate(features), np.concatenate(scores))
        top = {k: [manifest.labels[i] for i in v[1].argmax(axis=1)] for k, v in outputs.items()}
        full, small = outputs[False][0], outputs[True][0]
        cosine = (full * small).sum(1) / (np.linalg.norm(full, axis=1) * np.linalg.norm(small, axis=1))
        rows.append(
            {
                "model": name,
                "input": f"{len(index)} canvases as {112 * factor}x{112 * factor} JPEG",
                "n": len(labels),
                "accuracy_full": float(np.mean([t == y for t, y in zip(top[False], labels, strict=True)])),
                "accuracy_reduced": float(np.mean([t == y for t, y in zip(top[True], labels, strict=True)])),
                "top1_agreement": float(
                    np.mean([a == b for a, b in zip(top[False], top[True], strict=True)])
                ),
                "max_probability_difference": float(np.abs(outputs[True][1] - outputs[False][1]).max()),
                "min_feature_cosine": float(cosine.min()),
            }
        )
    return rows


def main() -> None:
    rows = []
    for name, (manifest, session) in sorted(models().items()):
        rows += (classifier_rows if name in CLASSIFIERS else region_rows)(name, manifest, session)
    result = {"commit": git_commit(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reduced_jpeg.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Reduced-scale JPEG decoding (`python -m bench.reduced_jpeg`, commit {result['commit']})",
        "",
        "| model | input | n | accuracy full | accuracy reduced | top-1 agreement | max prob. diff "
        "| min feature cosine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cosine = f"{r['min_feature_cosine']:.4f}" if "min_feature_cosine" in r else "—"
        lines.append(
            f"| {r['model']} | {r['input']} | {r['n']} | {r['accuracy_full']:.3f} "
            f"| {r['accuracy_reduced']:.3f} "
            f"| {r['top1_agreement']:.3f} | {r['max_probability_difference']:.3f} | {cosine} |"
        )
    (RESULTS / "reduced_jpeg.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
