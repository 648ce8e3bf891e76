"""The ceiling for tiny models: a FastAPI endpoint on the same uvicorn that receives the same multipart
upload and decodes + preprocesses it exactly like poolserve, then answers without any inference.

Run: ``BENCH_ENTRY=<entry dir> python -m uvicorn bench.targets.bare:create_app --factory``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, File, UploadFile

from bench.targets.common import preprocess, served_model_from_env


def create_app() -> FastAPI:
    served = served_model_from_env()
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/models/{name}/classify")
    async def classify(name: str, images: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        shapes = [preprocess(await image.read(), served.manifest).shape for image in images]
        return {"model": name, "predictions": [{"shape": list(s)} for s in shapes]}

    return app
