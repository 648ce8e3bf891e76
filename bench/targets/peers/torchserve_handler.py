"""TorchServe peer: a custom handler serving the ONNX file through onnxruntime. TorchServe batches
(``batchSize`` / ``maxBatchDelay`` from the manifest, see ``bench.peers``) and calls ``handle`` with a
list of requests; the worker finds ``bench`` through ``PYTHONPATH`` and the entry through ``BENCH_ENTRY``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.targets.common import classify_response, make_session, preprocess, served_model_from_env


class OnnxClassifierHandler:
    def __init__(self) -> None:
        self.served = served_model_from_env()
        self.session = make_session(self.served.model_path)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
        uploads = [bytes(row.get("images") or row.get("data") or row.get("body") or b"") for row in data]
        batch = np.stack([preprocess(upload, self.served.manifest) for upload in uploads])
        (scores,) = self.session.run([self.served.output_name], {self.served.input_name: batch})
        return classify_response(scores, self.served.manifest["labels"])


_handler: OnnxClassifierHandler | None = None


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[dict[str, Any]] | None:
    """TorchServe's module-level entry point; the first call (with no data) only initializes."""
    global _handler  # TorchServe's documented module-handler pattern: one handler per worker process
    if _handler is None:
        _handler = OnnxClassifierHandler()
    if data is None:
        return None
    return _handler.handle(data, context)
