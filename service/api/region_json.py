"""The JSON body of a region-features response, built column-wise: numpy per image, little Python per box.

Per box the response needs a dict, its feature vector and (for models with scores) ``k`` prediction dicts.
Ranking, label lookup and base64 run once per image over all its boxes; what is left per box is building
the dicts orjson serializes. Ranking is ``postprocess.top_k``, the same as
classification's. The bytes equal those of building and encoding each box on its own (pinned by
``tests/service/test_region_json.py``).
"""

from __future__ import annotations

import binascii
from typing import Any, Literal

import numpy as np

from poolserve.repository.manifest import Manifest
from poolserve.service.runtime.postprocess import top_k
from poolserve.service.runtime.runtime import RegionOutput

Encoding = Literal["float32", "float16-base64"]
_PAD = ord("=")
_ROWS_FOR_ONE_CALL = 8  # measured: below this, per-row base64 is cheaper than the batched steps


def region_results_json(
    manifest: Manifest, boxes: list[np.ndarray], output: RegionOutput, encoding: Encoding, k: int
) -> dict[str, Any]:
    """The response body: per image, per box its ``box``, ``features`` and, with scores, ``predictions``.

    ``boxes`` and ``output.features`` are per image, (k_i, 4) and (k_i, D); ``output.probabilities``, when
    present, (k_i, classes). Boxes and float32 vectors stay numpy rows for orjson to write.
    """
    probabilities = output.probabilities or []
    results = []
    for i, (image_boxes, features) in enumerate(zip(boxes, output.features, strict=True)):
        encoded = float16_base64_rows(features) if encoding == "float16-base64" else list(features)
        if probabilities:
            ranked = top_k(probabilities[i], manifest.labels, k)
            rows = [
                {"box": b, "features": f, "predictions": p}
                for b, f, p in zip(image_boxes, encoded, ranked, strict=True)
            ]
        else:
            rows = [{"box": b, "features": f} for b, f in zip(image_boxes, encoded, strict=True)]
        results.append({"boxes": rows})
    return {
        "model": manifest.name,
        "version": manifest.version,
        "feature_dim": manifest.feature_dim,
        "encoding": encoding,
        "results": results,
    }


def float16_base64_rows(features: np.ndarray) -> list[str]:
    """Each row of (rows, D) as base64 of its little-endian float16 bytes.

    Past a few rows, one base64 call for all: rows are zero-padded to a multiple of 3 bytes so the
    encoding splits at row boundaries, and the characters the padding bytes produced become the '='
    padding standard base64 writes. Below that, the numpy steps' fixed cost exceeds encoding row by row.
    """
    rows = len(features)
    with np.errstate(over="ignore"):  # beyond float16's range is inf, which is what the encoding says
        halves = features.astype("<f2", order="C")
    if rows < _ROWS_FOR_ONE_CALL:
        return [binascii.b2a_base64(row.data, newline=False).decode("ascii") for row in halves]
    width = 2 * features.shape[1]
    padded = -(-width // 3) * 3
    raw = np.zeros((rows, padded), np.uint8)  # np.pad does the same far more slowly
    raw[:, :width] = halves.view(np.uint8).reshape(rows, width)
    text = np.frombuffer(binascii.b2a_base64(raw.data, newline=False), np.uint8)
    chars = padded // 3 * 4
    if padded != width:
        text = text.reshape(rows, chars).copy()
        text[:, chars - (padded - width) :] = _PAD
    joined = text.tobytes().decode("ascii")
    if chars == 0:
        return [""] * rows
    return [joined[start : start + chars] for start in range(0, len(joined), chars)]
