"""The third-party entries on real photos, over HTTP: the numbers docs/pretrained.md publishes.

``python -m bench.pretrained_demo`` serves the shipped ``mtcnn-onet``, ``mtcnn-onet-regions`` and
``ppocr-textline-orientation`` entries with a real uvicorn on 127.0.0.1 (the service tests' harness) and
writes ``bench/results/pretrained.json``. tests/service/test_pretrained.py asserts on the same ``measure``.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.provenance import run_metadata
from poolserve.models.sample_photos import (
    ASTRONAUT_FACE,
    ASTRONAUT_NON_FACES,
    FACE_PHOTO,
    FACELESS_PHOTOS,
    Box,
    candidate_grid,
    photo,
    text_line_crops,
)
from poolserve.repository.store import discover, latest_versions, read_manifest
from poolserve.service.settings import Settings
from tests.service.conftest import running_server  # the service tests' real-uvicorn harness

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "pretrained.json"
ONET = "mtcnn-onet"
ONET_REGIONS = "mtcnn-onet-regions"
ORIENTATION = "ppocr-textline-orientation"
PRETRAINED = (ONET, ONET_REGIONS, ORIENTATION)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def classify(http: httpx.Client, model: str, images: list[np.ndarray]) -> list[dict[str, float]]:
    """Label -> probability for each image, from ``/v1/models/{model}/classify``."""
    files = [("images", (f"{i}.png", png(p), "image/png")) for i, p in enumerate(images)]
    response = http.post(f"/v1/models/{model}/classify", files=files, params={"top_k": 2})
    response.raise_for_status()
    return [{p["label"]: p["score"] for p in r["predictions"]} for r in response.json()["results"]]


def region_faces(http: httpx.Client, image: np.ndarray, boxes: list[Box]) -> tuple[list[float], np.ndarray]:
    """Face probability and 256-d feature vector of each box, from the region model's ``/features``."""
    response = http.post(
        f"/v1/models/{ONET_REGIONS}/features",
        files=[("images", ("photo.png", png(image), "image/png"))],
        data={"boxes": json.dumps([[list(b) for b in boxes]])},
        params={"top_k": 2},
    )
    response.raise_for_status()
    rows = response.json()["results"][0]["boxes"]
    scores = [{p["label"]: p["score"] for p in row["predictions"]}["face"] for row in rows]
    return scores, np.asarray([row["features"] for row in rows], np.float32)


def _crop(image: np.ndarray, box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def measure_faces(http: httpx.Client) -> dict[str, Any]:
    """Both ONet entries on the astronaut's face, hand-picked non-faces, and a 128 px window grid
    (stride 64) over every photo; windows that overlap the face are reported apart."""
    out: dict[str, Any] = {}
    astronaut = photo(FACE_PHOTO)
    picked = [ASTRONAUT_FACE, *ASTRONAUT_NON_FACES]
    region_scores, features = region_faces(http, astronaut, picked)
    crop_scores = [s["face"] for s in classify(http, ONET, [_crop(astronaut, b) for b in picked])]
    out[FACE_PHOTO] = {
        "face_box": list(ASTRONAUT_FACE),
        "face_probability": {"regions": region_scores[0], "classifier": crop_scores[0]},
        "non_face_boxes": [list(b) for b in ASTRONAUT_NON_FACES],
        "non_face_probabilities": {"regions": region_scores[1:], "classifier": crop_scores[1:]},
        "feature_dim": int(features.shape[1]),
    }
    for name in (FACE_PHOTO, *FACELESS_PHOTOS):
        image = photo(name)
        grid = candidate_grid(*image.shape[:2])
        scores, _ = region_faces(http, image, grid)
        crops = [s["face"] for s in classify(http, ONET, [_crop(image, b) for b in grid])]
        on_face = [_overlaps(b, ASTRONAUT_FACE) if name == FACE_PHOTO else False for b in grid]
        off = [s for s, hit in zip(scores, on_face, strict=True) if not hit]
        out.setdefault(name, {})["grid"] = {
            "windows": len(grid),
            "windows_overlapping_the_face": sum(on_face),
            "max_probability_off_face": {
                "regions": max(off),
                "classifier": max(s for s, hit in zip(crops, on_face, strict=True) if not hit),
            },
            "windows_off_face_above_0.5": sum(s > 0.5 for s in off),
            "max_probability_on_face": max(
                (s for s, hit in zip(scores, on_face, strict=True) if hit), default=None
            ),
        }
    return out


def _overlaps(box: Box, other: Box) -> bool:
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


def measure_orientation(http: httpx.Client) -> dict[str, Any]:
    """Each text-line piece of page() sent upright and rotated 180°; correct = the right label wins."""
    lines = text_line_crops()
    upright = classify(http, ORIENTATION, [c.pixels for c in lines])
    rotated = classify(http, ORIENTATION, [np.ascontiguousarray(c.pixels[::-1, ::-1]) for c in lines])
    upright_ok = [s["0"] > s["180"] for s in upright]
    rotated_ok = [s["180"] > s["0"] for s in rotated]
    return {
        "crops": len(lines),
        "samples": 2 * len(lines),
        "accuracy": float(np.mean(upright_ok + rotated_ok)),
        "upright_accuracy": float(np.mean(upright_ok)),
        "rotated_accuracy": float(np.mean(rotated_ok)),
        "per_crop": [
            {"box": list(c.box), "p180_upright": u["180"], "p180_rotated": r["180"]}
            for c, u, r in zip(lines, upright, rotated, strict=True)
        ],
    }


def measure(http: httpx.Client, repository: Path) -> dict[str, Any]:
    manifests = {loc.name: read_manifest(loc) for loc in latest_versions(discover(repository))}
    return {
        "faces": measure_faces(http),
        "text_line_orientation": measure_orientation(http),
        "verification": {name: manifests[name].verification.model_dump(mode="json") for name in PRETRAINED},
    }


def pretrained_repository(target: Path) -> Path:
    """A repository holding only the three shipped third-party entries (copied from model_repository/)."""
    for name in PRETRAINED:
        shutil.copytree(ROOT / "model_repository" / name, target / name)
    return target


def main() -> None:
    meta = run_metadata()
    with tempfile.TemporaryDirectory() as scratch:
        repository = pretrained_repository(Path(scratch))
        with (
            running_server(Settings(repository=repository)) as url,
            httpx.Client(base_url=url, timeout=60) as http,
        ):
            results = {"meta": meta, **measure(http, repository)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    faces, lines = results["faces"], results["text_line_orientation"]
    print(f"astronaut face box: {faces[FACE_PHOTO]['face_probability']}")
    for name in (FACE_PHOTO, *FACELESS_PHOTOS):
        print(f"{name} grid: {faces[name]['grid']}")
    print(f"text-line orientation accuracy: {lines['accuracy']:.3f} on {lines['samples']} crops")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
