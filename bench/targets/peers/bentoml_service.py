"""BentoML peer: ``BENCH_ENTRY=... bentoml serve bench.targets.peers.bentoml_service:OnnxClassifier``.

Adaptive batching with the manifest's ``max_batch_size``; BentoML's ``max_latency_ms`` is a deadline
after which it rejects requests (not a batching window), so it keeps BentoML's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from bench.targets.common import classify_response, make_session, preprocess, served_model_from_env

_SERVED = served_model_from_env()


@bentoml.service(workers=1, traffic={"timeout": 120})
class OnnxClassifier:
    def __init__(self) -> None:
        self.served = _SERVED
        self.session = make_session(self.served.model_path)

    @bentoml.api(batchable=True, max_batch_size=_SERVED.max_batch_size)
    def classify(self, images: list[Path]) -> list[dict[str, Any]]:
        batch = np.stack([preprocess(path.read_bytes(), self.served.manifest) for path in images])
        (scores,) = self.session.run([self.served.output_name], {self.served.input_name: batch})
        return classify_response(scores, self.served.manifest["labels"])
