"""The limit for compute-bound models: onnxruntime in-process, no HTTP, on the server's core with the
same session options as every server (one intra-op thread), at each batch size.

Run on its own by the benchmark as ``python -m bench.raw_ort ENTRY_DIR SECONDS`` under taskset; prints
one JSON object: images per second per batch size, the best batch size, and that batch size measured
again for three times as long (``best_images_per_s``). The scan's own best is the highest of seven noisy
figures, which overstates that batch size on a host whose speed drifts by tens of percent; a second,
independent measurement of it does not.

``python -m bench.raw_ort ENTRY_DIR SECONDS --batch N`` measures batch N only, three times as long: the
benchmark runs it again at the end of a model's block, so that the reference, like poolserve's two passes,
brackets the servers' runs instead of being taken at the start only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.targets.common import load_served_model, make_session

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


class _RawModel:
    """One model's session, timed on random inputs of its shape at any batch size."""

    def __init__(self, entry: Path) -> None:
        self.served = load_served_model(entry)
        self.session = make_session(self.served.model_path)
        spec = self.served.manifest["preprocessing"]
        self.shape = (1 if spec["color_mode"] == "L" else 3, spec["height"], spec["width"])
        self.rng = np.random.default_rng(0)

    def images_per_s(self, batch: int, seconds: float) -> float:
        x = self.rng.standard_normal((batch, *self.shape)).astype(np.float32)
        feed, outputs = {self.served.input_name: x}, [self.served.output_name]
        self.session.run(outputs, feed)  # warm-up: first-run allocations
        runs, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or runs < 3:
            self.session.run(outputs, feed)
            runs += 1
        return runs * batch / elapsed


def measure(entry: Path, seconds_per_batch: float) -> dict[str, object]:
    model = _RawModel(entry)
    per_batch = {batch: model.images_per_s(batch, seconds_per_batch) for batch in BATCH_SIZES}
    best = max(per_batch, key=lambda b: per_batch[b])
    return {
        "model": model.served.name,
        "images_per_s": per_batch,
        "best_batch_size": best,
        "scan_best_images_per_s": per_batch[best],
        "best_images_per_s": model.images_per_s(best, 3 * seconds_per_batch),
    }


def measure_batch(entry: Path, seconds_per_batch: float, batch: int) -> dict[str, object]:
    model = _RawModel(entry)
    return {
        "model": model.served.name,
        "batch_size": batch,
        "images_per_s": model.images_per_s(batch, 3 * seconds_per_batch),
    }


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[3] == "--batch":
        print(json.dumps(measure_batch(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[4]))))
    else:
        print(json.dumps(measure(Path(sys.argv[1]), float(sys.argv[2]))))
