"""Inputs for the region-features models: canvases with the boxes a detector would propose on them.

Canvases come from ``tests/data/canvases/`` (listed with their boxes in ``canvases.json``), topped up
with canvases composed here: 1..4 digits pasted on a black ~112×112 grey canvas, as the digits region
models were trained on. Photos join them with boxes anywhere, since real clients send those too.

Box counts per image follow a spread, not a constant: most requests carry a handful of boxes, a few carry
hundreds (a detector's raw proposals), which is what moves the RoI pooling cost.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from poolserve.loadtests.corpus import EncodedImage, Pixels, encode

Box = tuple[float, float, float, float]

CANVAS_SIDES = ((112, 0.7), (96, 0.1), (128, 0.1), (160, 0.1))  # (side, weight): "~112×112"
COMPOSED_CANVASES = 96
DIGIT_SIDES = (20, 44)
INK_THRESHOLD = 32
# (lowest, highest, weight) boxes per image.
BOX_COUNT_BUCKETS = ((1, 4, 0.35), (5, 16, 0.35), (17, 64, 0.20), (65, 256, 0.10))
IMAGES_PER_REQUEST = ((1, 0.7), (2, 0.2), (4, 0.1))
MIN_BOX_SIDE = 4.0
CANVAS_INDEX = "canvases.json"


@dataclass(frozen=True)
class RegionImage:
    image: EncodedImage
    objects: tuple[Box, ...]  # boxes around what is really there (digits); empty for photos


def _ink_box(patch: Pixels) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero((patch > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((patch > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def compose_canvas(digits: list[Pixels], rng: np.random.Generator, side: int) -> tuple[Pixels, list[Box]]:
    """1..4 digits at random sizes and places (pixels combine by maximum); boxes are their ink."""
    canvas = np.zeros((side, side), dtype=np.uint8)
    boxes: list[Box] = []
    for _ in range(int(rng.integers(1, 5))):
        size = int(rng.integers(DIGIT_SIDES[0], DIGIT_SIDES[1] + 1))
        digit = digits[int(rng.integers(len(digits)))]
        patch = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR), np.uint8)
        ink = _ink_box(patch)
        if ink is None:
            continue
        top, left = (int(v) for v in rng.integers(0, side - size + 1, size=2))
        region = canvas[top : top + size, left : left + size]
        np.maximum(region, patch, out=region)
        boxes.append((left + ink[0], top + ink[1], left + ink[2], top + ink[3]))
    return canvas, boxes


def composed_canvases(digits: list[Pixels], rng: np.random.Generator) -> list[RegionImage]:
    sides, weights = zip(*CANVAS_SIDES, strict=True)
    p = np.array(weights) / sum(weights)
    canvases = []
    for index in range(COMPOSED_CANVASES):
        pixels, boxes = compose_canvas(digits, rng, int(rng.choice(sides, p=p)))
        media_type = "image/png" if rng.random() < 0.8 else "image/jpeg"
        canvases.append(RegionImage(encode(pixels, media_type, f"composed:canvas[{index}]"), tuple(boxes)))
    return canvases


def stored_canvases(directory: Path) -> list[RegionImage]:
    """The canvases an index file lists: ``canvases.json`` = ``{"canvases": [{"file", "boxes"}, ...]}``."""
    index = directory / CANVAS_INDEX
    if not index.is_file():
        return []
    canvases = []
    for entry in json.loads(index.read_text())["canvases"]:
        path = directory / entry["file"]
        with Image.open(path) as image:
            width, height = image.size
        data = path.read_bytes()
        encoded = EncodedImage(
            f"{directory.name}/{path.name}", "image/png", width, height, data, base64.b64encode(data).decode()
        )
        boxes = tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in entry["boxes"])
        canvases.append(RegionImage(encoded, boxes))
    return canvases


def draw_weighted(rng: random.Random, table: tuple[tuple[int, float], ...]) -> int:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights=weights)[0]


def draw_box_count(rng: random.Random) -> int:
    buckets = [(low, high) for low, high, _ in BOX_COUNT_BUCKETS]
    low, high = rng.choices(buckets, weights=[w for *_, w in BOX_COUNT_BUCKETS])[0]
    return rng.randint(low, high)


def _random_box(rng: random.Random, width: int, height: int) -> Box:
    box_w = rng.uniform(MIN_BOX_SIDE, max(MIN_BOX_SIDE, width * 0.6))
    box_h = rng.uniform(MIN_BOX_SIDE, max(MIN_BOX_SIDE, height * 0.6))
    x1, y1 = rng.uniform(0, max(0.0, width - box_w)), rng.uniform(0, max(0.0, height - box_h))
    return (x1, y1, min(width, x1 + box_w), min(height, y1 + box_h))


def _jittered(rng: random.Random, box: Box, width: int, height: int) -> Box:
    """A proposal near an object, as a detector's overlapping candidates are."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * 0.25, (y2 - y1) * 0.25
    nx1, ny1 = max(0.0, x1 + rng.uniform(-dx, dx)), max(0.0, y1 + rng.uniform(-dy, dy))
    nx2, ny2 = min(float(width), x2 + rng.uniform(-dx, dx)), min(float(height), y2 + rng.uniform(-dy, dy))
    return (nx1, ny1, max(nx2, nx1 + 1.0), max(ny2, ny1 + 1.0))


def draw_boxes(rng: random.Random, item: RegionImage, count: int) -> list[list[float]]:
    """``count`` boxes in the image's own pixels: its objects first, then jittered copies and random ones."""
    width, height = item.image.width, item.image.height
    boxes: list[Box] = list(item.objects[:count])
    while len(boxes) < count:
        if item.objects and rng.random() < 0.5:
            boxes.append(_jittered(rng, rng.choice(item.objects), width, height))
        else:
            boxes.append(_random_box(rng, width, height))
    return [[round(v, 1) for v in box] for box in boxes]
