"""Real photos that ship offline inside scikit-image, with the boxes and crops the pretrained demos use.

- Faces: ``astronaut()`` (Eileen Collins' NASA portrait, public domain) has one face; ``coffee()`` and
  ``rocket()`` have none. Boxes are ``x1, y1, x2, y2`` in the photo's own pixels, placed by eye.
- Text lines: ``page()`` (a photographed book page, 191×384 grey) cut into line pieces no wider than
  ``MAX_LINE_ASPECT`` times their height, each tightened to its ink, as a text detector would box them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage import data

Box = tuple[int, int, int, int]

FACE_PHOTO = "astronaut"
FACELESS_PHOTOS = ("coffee", "rocket")
ASTRONAUT_FACE: Box = (170, 50, 250, 150)
# Non-face parts of the astronaut photo: sky, flag, suit and helmet, the shuttle model in her hand.
ASTRONAUT_NON_FACES: tuple[Box, ...] = (
    (0, 0, 96, 96),
    (380, 20, 500, 140),
    (250, 300, 400, 450),
    (0, 300, 150, 450),
)

# Row bands of page()'s text lines (title, five lines of prose, the code line), located by eye.
PAGE_LINE_BANDS = ((12, 35), (48, 64), (65, 82), (83, 100), (100, 118), (118, 137), (170, 187))
MAX_LINE_ASPECT = 8
_INK_CONTRAST = 40  # grey levels below the local paper brightness that count as ink
_PAPER_WINDOW = 15  # px; larger than a stroke, smaller than the lighting gradient
_CROP_MARGIN = 1


def photo(name: str) -> NDArray[np.uint8]:
    """(H, W, 3) uint8 RGB, or (H, W) for ``page``."""
    return np.asarray(getattr(data, name)(), dtype=np.uint8)


def candidate_grid(height: int, width: int, size: int = 128, step: int = 64) -> list[Box]:
    """Square windows tiling a photo, as a face detector's proposals would (all inside the photo)."""
    return [
        (x, y, x + size, y + size)
        for y in range(0, height - size + 1, step)
        for x in range(0, width - size + 1, step)
    ]


@dataclass(frozen=True)
class TextLineCrop:
    box: Box  # in page() pixels
    pixels: NDArray[np.uint8]  # (h, w) grey, upright


def _ink(page: NDArray[np.uint8]) -> NDArray[np.bool_]:
    # The page is lit unevenly; compare each pixel with the local paper brightness (a grey closing).
    paper = ndimage.grey_closing(page.astype(np.float32), size=(_PAPER_WINDOW, _PAPER_WINDOW))
    return np.asarray((paper - page) > _INK_CONTRAST)


def text_line_crops() -> list[TextLineCrop]:
    page = photo("page")
    ink = _ink(page)
    crops: list[TextLineCrop] = []
    for top, bottom in PAGE_LINE_BANDS:
        columns = np.flatnonzero(ink[top:bottom].any(axis=0))
        left, right = int(columns[0]), int(columns[-1]) + 1
        pieces = max(1, math.ceil((right - left) / (MAX_LINE_ASPECT * (bottom - top))))
        edges = np.linspace(left, right, pieces + 1).round().astype(int)
        for start, stop in itertools.pairwise(edges.tolist()):
            window = ink[top:bottom, start:stop]
            rows, cols = np.flatnonzero(window.any(axis=1)), np.flatnonzero(window.any(axis=0))
            y1, y2 = max(0, top + rows[0] - _CROP_MARGIN), top + rows[-1] + 1 + _CROP_MARGIN
            x1, x2 = max(0, start + cols[0] - _CROP_MARGIN), start + cols[-1] + 1 + _CROP_MARGIN
            box = (int(x1), int(y1), int(x2), int(y2))
            crops.append(TextLineCrop(box, page[y1:y2, x1:x2].copy()))
    return crops
