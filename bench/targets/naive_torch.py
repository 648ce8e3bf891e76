"""The naive baseline: FastAPI + PyTorch eager, one forward pass per request, no batching, the way a
first prototype is usually written. Same weights as the ONNX model (see ``bench.torch_models``).

Run: ``BENCH_ENTRY=<entry dir> python -m uvicorn bench.targets.naive_torch:create_app --factory``.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, File, UploadFile

from bench.targets.common import classify_response, preprocess, served_model_from_env
from bench.torch_models import torch_module_for


def create_app() -> FastAPI:
    served = served_model_from_env()
    torch.set_num_threads(1)  # one core per server in this benchmark, as for every other target
    model = torch_module_for(served)
    labels = served.manifest["labels"]
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/models/{name}/classify")
    async def classify(name: str, images: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        batch = np.stack([preprocess(await image.read(), served.manifest) for image in images])
        with torch.inference_mode():
            scores = model(torch.from_numpy(batch)).numpy()
        return {"model": name, "predictions": classify_response(scores, labels)}

    return app
