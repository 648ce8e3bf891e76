"""Ray Serve peer: ``BENCH_ENTRY=... BENCH_PORT=... python -m bench.targets.peers.ray_app``.

One replica with one CPU, ``@serve.batch`` with the manifest's batch size and delay; the process blocks
until killed (the benchmark stops the whole process group, Ray's raylet and workers included).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import ray
from ray import serve
from starlette.requests import Request

from bench.targets.common import classify_response, make_session, preprocess, served_model_from_env

_SERVED = served_model_from_env()


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=256)
class OnnxClassifier:
    def __init__(self) -> None:
        self.served = _SERVED
        self.session = make_session(self.served.model_path)

    @serve.batch(
        max_batch_size=_SERVED.max_batch_size,
        batch_wait_timeout_s=_SERVED.max_queue_delay_ms / 1000.0,
    )
    async def classify(self, uploads: list[bytes]) -> list[dict[str, Any]]:
        batch = np.stack([preprocess(upload, self.served.manifest) for upload in uploads])
        (scores,) = self.session.run([self.served.output_name], {self.served.input_name: batch})
        return classify_response(scores, self.served.manifest["labels"])

    async def __call__(self, request: Request) -> dict[str, Any]:
        form = await request.form()
        upload = form["images"]
        # a text field where a file belongs: its bytes, which the decoder then refuses like any non-image
        data = upload.encode() if isinstance(upload, str) else await upload.read()
        return {"predictions": [await self.classify(data)]}


def main() -> None:
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": int(os.environ["BENCH_PORT"])})
    serve.run(OnnxClassifier.bind(), route_prefix="/predict")  # type: ignore[attr-defined]
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
