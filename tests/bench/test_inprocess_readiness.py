"""bench.inprocess.model_ready: the in-process benchmarks stop with the reason, rather than time 404s or
hang, when the model they drive is not serving or the repository never finishes loading."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.inprocess import model_ready
from bench.suite import ROOT
from poolserve.service.app import build_registry, create_app
from poolserve.service.metrics import ServiceMetrics
from poolserve.service.settings import Settings


async def _ready_in(repository: Path, model: str) -> None:
    app = create_app(Settings(repository=repository))
    async with app.router.lifespan_context(app):
        await model_ready(app, model)


def test_a_shipped_model_is_ready() -> None:
    asyncio.run(_ready_in(ROOT / "model_repository", "lenet5-mnist"))


def test_a_model_the_repository_lacks_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"lenet5-mnist is not ready .*\(not found\)"):
        asyncio.run(_ready_in(tmp_path, "lenet5-mnist"))


def test_a_load_that_never_ends_stops_the_run(tmp_path: Path) -> None:
    # A real registry whose load_all never runs (the app's lifespan is what would run it): never loaded.
    registry = build_registry(Settings(repository=tmp_path), ServiceMetrics())
    app = SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(registry=registry)))
    with pytest.raises(SystemExit, match=r"did not finish loading within 0\.05 s"):
        asyncio.run(model_ready(app, "lenet5-mnist", timeout_s=0.05))
