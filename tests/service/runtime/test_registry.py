"""The registry hands a request its model once: one lookup by name, one readiness check, per request."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from poolserve.repository.manifest import BatchingDefaults
from poolserve.repository.store import EntryLocation
from poolserve.service.errors import ModelNotReady
from poolserve.service.runtime.batcher import BatchConfig
from poolserve.service.runtime.model_io import TaskIO
from poolserve.service.runtime.registry import (
    BatchOverrides,
    ModelEntry,
    ModelRegistry,
    ModelStatus,
    ServingModel,
)
from tests.service.conftest import DATA

DIGIT = (DATA / "digits" / "0_0.png").read_bytes()
CANVAS = (DATA / "canvases" / "canvas_0.png").read_bytes()
V2_BODY = orjson.dumps(
    {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}]}
)
REQUESTS: dict[str, dict[str, Any]] = {
    "v1 classify": {
        "url": "/v1/models/lenet5-mnist/classify",
        "content": DIGIT,
        "headers": {"Content-Type": "image/png"},
    },
    "v1 features": {
        "url": "/v1/models/digits-roialign/features",
        "files": {"images": ("c.png", CANVAS, "image/png")},
        "data": {"boxes": "[[[4, 4, 40, 40], [50, 20, 90, 70]]]"},
    },
    "v2 infer": {"url": "/v2/models/lenet5-mnist/infer", "content": V2_BODY},
}


@pytest.mark.parametrize("request_name", REQUESTS)
def test_a_request_looks_its_model_up_once_and_checks_readiness_once(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch, request_name: str
) -> None:
    calls: Counter[str] = Counter()
    get, serving = ModelRegistry.get, ModelEntry.serving

    def counted_get(self: ModelRegistry, name: str) -> ModelEntry:
        calls["get"] += 1
        return get(self, name)

    def counted_serving(self: ModelEntry) -> ServingModel[TaskIO]:
        calls["serving"] += 1
        return serving(self)

    monkeypatch.setattr(ModelRegistry, "get", counted_get)
    monkeypatch.setattr(ModelEntry, "serving", counted_serving)
    response = client.post(**REQUESTS[request_name])
    assert response.status_code == 200, response.text
    assert calls == {"get": 1, "serving": 1}


def test_an_entry_that_is_not_loaded_answers_503_saying_why(tmp_path: Path) -> None:
    location = EntryLocation("absent", 1, tmp_path)
    with pytest.raises(ModelNotReady, match="still loading"):
        ModelEntry("absent", 1, location).serving()
    with pytest.raises(ModelNotReady, match="failed to load"):
        ModelEntry("absent", 1, location, status=ModelStatus.FAILED).serving()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (BatchOverrides(None, None, 256, 0.5), BatchConfig(8, 3.0, 256, 0.5)),
        (BatchOverrides(16, None, 10, 0.0), BatchConfig(16, 3.0, 10, 0.0)),
        (BatchOverrides(None, 0.0, 256, 0.5), BatchConfig(8, 0.0, 256, 0.5)),  # 0 ms is an override too
        (BatchOverrides(2, 7.5, 1, 0.0), BatchConfig(2, 7.5, 1, 0.0)),
    ],
)
def test_settings_overrides_win_over_the_manifest_batching_where_given(
    overrides: BatchOverrides, expected: BatchConfig
) -> None:
    defaults = BatchingDefaults(max_batch_size=8, max_queue_delay_ms=3.0)
    assert overrides.config(defaults) == expected
