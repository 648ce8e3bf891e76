"""LitServe peer: ``BENCH_ENTRY=... BENCH_PORT=... python -m bench.targets.peers.litserve_app``."""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation at run time.

import os
from typing import Any

import litserve as ls
import numpy as np
from starlette.requests import Request

from bench.targets.common import classify_response, make_session, preprocess, served_model_from_env


class OnnxClassifier(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.served = served_model_from_env()
        self.session = make_session(self.served.model_path)

    def decode_request(self, request: Request) -> Any:
        return preprocess(request["images"].file.read(), self.served.manifest)

    def batch(self, inputs: list[Any]) -> Any:
        return np.stack(inputs)

    def predict(self, x: Any) -> Any:
        (scores,) = self.session.run([self.served.output_name], {self.served.input_name: x})
        return classify_response(scores, self.served.manifest["labels"])

    def unbatch(self, output: Any) -> list[Any]:
        return list(output)

    def encode_response(self, output: Any) -> Any:
        return {"predictions": [output]}


def main() -> None:
    served = served_model_from_env()
    api = OnnxClassifier(
        max_batch_size=served.max_batch_size,
        batch_timeout=served.max_queue_delay_ms / 1000.0,
        api_path="/predict",
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, track_requests=False)
    server.run(
        host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), log_level="warning", generate_client_file=False
    )


if __name__ == "__main__":
    main()
