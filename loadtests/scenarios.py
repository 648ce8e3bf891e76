"""The locust users: one request kind per task, a scenario is a weighted set of tasks.

Imports locust (and with it gevent's monkey-patching): only the engine process imports this module.
Every response is checked for the shape the request asked for, so a fast wrong answer counts as a failure.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from locust import HttpUser
from locust.clients import ResponseContextManager

from poolserve.loadtests import workload
from poolserve.loadtests.config import RunConfig
from poolserve.loadtests.corpus import EncodedImage
from poolserve.loadtests.workload import Corpus

NPY_MAGIC = b"\x93NUMPY"
TaskFn = Callable[["PoolserveUser"], None]


class PoolserveUser(HttpUser):
    """Base user; ``user_class`` below subclasses it with the run's corpus, models and tasks."""

    abstract = True
    corpus: Corpus
    config: RunConfig
    _ids: Iterator[int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A seeded stream per user: reruns draw the same requests in each user, whatever the interleaving.
        self.rng = random.Random(self.config.seed * 1_000_003 + next(self._ids))  # noqa: S311  (not crypto)
        if self.config.api_key:
            self.client.headers["X-API-Key"] = self.config.api_key

    def think(self) -> float:
        return self.rng.uniform(0, 2 * self.config.think_ms) / 1000 if self.config.think_ms else 0.0

    def classifier(self) -> str:
        return self.rng.choice(self.config.models.classification)

    def region_model(self) -> str:
        return self.rng.choice(self.config.models.region_features)


def _files(images: list[EncodedImage]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("images", (f"image{i}{img.extension}", img.data, img.media_type)) for i, img in enumerate(images)
    ]


def _check_classified(response: ResponseContextManager, expected: int) -> None:
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}")
        return
    results = orjson.loads(response.content).get("results", [])
    if len(results) != expected or not all(r.get("predictions") for r in results):
        response.failure(f"expected {expected} results with predictions, got {len(results)}")


def _top_k(user: PoolserveUser) -> dict[str, int]:
    return {"top_k": user.rng.choice((1, 3, 5))}


def _classify(user: PoolserveUser, name: str, expected: int, **request: Any) -> None:
    with user.client.post(
        f"/v1/models/{user.classifier()}/classify",
        params=_top_k(user),
        name=name,
        catch_response=True,
        **request,
    ) as response:
        _check_classified(response, expected)


def classify_multipart(user: PoolserveUser) -> None:
    image = workload.classify_image(user.rng, user.corpus)
    _classify(user, "classify multipart", 1, files=_files([image]))


def classify_json(user: PoolserveUser) -> None:
    body = orjson.dumps({"images": [workload.classify_image(user.rng, user.corpus).b64]})
    _classify(user, "classify json", 1, data=body, headers={"Content-Type": "application/json"})


def classify_raw(user: PoolserveUser) -> None:
    image = workload.classify_image(user.rng, user.corpus)
    _classify(user, "classify raw", 1, data=image.data, headers={"Content-Type": image.media_type})


def classify_batch(user: PoolserveUser) -> None:
    images = workload.classify_batch(user.rng, user.corpus)
    _classify(user, "classify batch", len(images), files=_files(images))


def _check_regions(response: ResponseContextManager, counts: list[int], as_npy: bool) -> None:
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}")
    elif as_npy:
        header = response.headers.get("X-Box-Counts", "")
        if header != ",".join(map(str, counts)) or not response.content.startswith(NPY_MAGIC):
            response.failure(f"expected .npy with box counts {counts}, got {header!r}")
    else:
        results = orjson.loads(response.content).get("results", [])
        if [len(r.get("boxes", [])) for r in results] != counts:
            response.failure(f"expected box counts {counts}")


def features(user: PoolserveUser) -> None:
    """Half multipart, half JSON; half the clients ask for .npy (what a feature pipeline would)."""
    request = workload.region_request(user.rng, user.corpus)
    as_npy = user.rng.random() < 0.5
    headers = {"Accept": "application/x-npy"} if as_npy else {}
    url = f"/v1/models/{user.region_model()}/features"
    if user.rng.random() < 0.5:
        kwargs: dict[str, Any] = {
            "files": _files(request.images),
            "data": {"boxes": orjson.dumps(request.boxes).decode()},
        }
    else:
        items = [{"image": i.b64, "boxes": b} for i, b in zip(request.images, request.boxes, strict=True)]
        kwargs = {"data": orjson.dumps({"items": items})}
        headers["Content-Type"] = "application/json"
    with user.client.post(url, headers=headers, name="features", catch_response=True, **kwargs) as response:
        _check_regions(response, request.box_counts, as_npy)


TASKS: dict[str, TaskFn] = {
    "classify-multipart": classify_multipart,
    "classify-json": classify_json,
    "classify-raw": classify_raw,
    "classify-batch": classify_batch,
    "features": features,
}


def user_class(config: RunConfig, images: Corpus) -> type[PoolserveUser]:
    tasks = {
        TASKS[name]: weight
        for name, weight in workload.scenario_weights(config.scenario, config.models).items()
    }
    return type(
        "PoolserveScenarioUser",
        (PoolserveUser,),
        {
            "abstract": False,
            "host": config.host,
            "tasks": tasks,
            "wait_time": lambda self: self.think(),
            "corpus": images,
            "config": config,
            "_ids": itertools.count(),
        },
    )
