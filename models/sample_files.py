"""Held-out digits and canvases as real PNG files, for other teams' tests (numpy + Pillow only).

Deterministic: the same files byte for byte on every run (PNG without timestamps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from poolserve.models.canvas import compose_canvases
from poolserve.models.mnist import DigitSplit

PER_CLASS = 10
CANVASES = 5
CANVAS_SEED = 11


def write_digit_pngs(test: DigitSplit, directory: Path, per_class: int = PER_CLASS) -> list[Path]:
    """``<label>_<index>.png``: the first ``per_class`` held-out images of each digit; ``index`` is the
    position in the held-out split, so a test can find the same image in ``held_out_split().test``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for digit in range(10):
        for index in np.flatnonzero(test.labels == digit)[:per_class]:
            path = directory / f"{digit}_{int(index)}.png"
            Image.fromarray(test.images[index]).save(path, format="PNG", optimize=False)
            written.append(path)
    return written


def write_canvas_pngs(test: DigitSplit, directory: Path, count: int = CANVASES) -> Path:
    """``canvas_<i>.png`` built from held-out digits only, plus ``canvases.json`` with their true boxes
    (x1, y1, x2, y2 in canvas pixels) and labels."""
    directory.mkdir(parents=True, exist_ok=True)
    truth = []
    for i, canvas in enumerate(compose_canvases(test, count, CANVAS_SEED)):
        name = f"canvas_{i}.png"
        Image.fromarray(canvas.image).save(directory / name, format="PNG", optimize=False)
        truth.append(
            {"file": name, "boxes": canvas.boxes.tolist(), "labels": [str(v) for v in canvas.labels]}
        )
    index = directory / "canvases.json"
    index.write_text(json.dumps({"seed": CANVAS_SEED, "canvases": truth}, indent=2) + "\n", encoding="utf-8")
    return index
