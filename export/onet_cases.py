"""Parity inputs for the exported ONet graphs: real photos first, seeded noise beside them.

Cases are ``poolserve.export.parity.InputCase`` dicts (graph input name -> array), as
``poolserve.export.parity.compare`` takes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from poolserve.export.parity import InputCase
from poolserve.models.onet import ONET_INPUT_SIZE, ONET_MEAN, ONET_STD
from poolserve.models.sample_photos import ASTRONAUT_FACE, FACE_PHOTO, candidate_grid, photo

REGION_FRAME = 512  # photos are stretched to this square before boxes are cut out of them
CASE_SEED = 0


def _onet_input(pixels: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, size, size) float32, as the service preprocesses it (Pillow bilinear)."""
    resized = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR), np.float32)
    return np.ascontiguousarray(((resized - ONET_MEAN) / ONET_STD).transpose(2, 0, 1)[None], np.float32)


def classifier_cases() -> list[InputCase]:
    """The astronaut's real face crop (the case that matters) and seeded noise beside it: batch 1, 2, 7."""
    x1, y1, x2, y2 = ASTRONAUT_FACE
    face = _onet_input(photo(FACE_PHOTO)[y1:y2, x1:x2], ONET_INPUT_SIZE)
    rng = np.random.default_rng(CASE_SEED)
    cases = [{"images": face}]
    for batch in (2, 7):
        noise = rng.standard_normal((batch - 1, 3, ONET_INPUT_SIZE, ONET_INPUT_SIZE)).astype(np.float32)
        cases.append({"images": np.concatenate([face, noise])})
    return cases


def region_cases() -> list[InputCase]:
    """Real photos with the face box, a window grid, fractional random boxes, no boxes; one photo and two."""
    astronaut = _onet_input(photo(FACE_PHOTO), REGION_FRAME)
    both = np.concatenate([astronaut, _onet_input(photo("coffee"), REGION_FRAME)])
    face = np.asarray([ASTRONAUT_FACE], np.float32)  # astronaut() is 512×512 already: same frame
    grid = np.asarray(candidate_grid(REGION_FRAME, REGION_FRAME, size=160, step=96), np.float32)
    rng = np.random.default_rng(CASE_SEED)
    corners = rng.uniform(0, REGION_FRAME - 60, size=(9, 2))
    odd = np.concatenate([corners, corners + rng.uniform(12, 212, size=(9, 2))], axis=1).astype(np.float32)

    def case(images: np.ndarray, boxes: np.ndarray, indices: list[int]) -> InputCase:
        return {
            "images": images,
            "boxes": boxes.reshape(-1, 4),
            "box_batch_indices": np.asarray(indices, np.int64),
        }

    return [
        case(astronaut, face, [0]),
        case(astronaut, np.zeros((0, 4), np.float32), []),
        case(astronaut, np.concatenate([face, grid]), [0] * (1 + len(grid))),
        case(both, np.concatenate([face, odd]), [0] + [i % 2 for i in range(len(odd))]),
    ]
