"""The ``http`` engine: the same job against a running deployment, through the public client.

Requests carry up to ``batch_size`` images (and at most the server's box limit); ``concurrency`` of them
are in flight at once, and 503s are retried as ``Retry-After`` says (the client does that). A request
the server refuses as bad input is split into one-image requests, so only the bad image is reported.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from poolserve.client import AsyncPoolserveClient, BadInput
from poolserve.extract import rows
from poolserve.extract.boxes import check_image_boxes
from poolserve.extract.dataset import Item
from poolserve.extract.job import JobSpec, ModelRef
from poolserve.extract.pipeline import Progress, ProgressSink
from poolserve.extract.prepare import InputError, ItemError, image_detail, read_image_file
from poolserve.extract.rows import ImageResult, Ranked
from poolserve.extract.shards import Shard, write_shard
from poolserve.service.api.error_table import slug
from poolserve.service.errors import ServiceError

_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def model_ref(info: dict[str, object], name: str, version: int | None) -> ModelRef:
    """The model as ``GET /v1/models/{name}`` describes it; the server serves its newest version only."""
    if version is not None and info["version"] != version:
        raise ValueError(f"the server serves {name} version {info['version']}, not {version}")
    outputs = info.get("outputs") or []
    task = str(info["task"])
    assert isinstance(outputs, list)
    return ModelRef(
        name,
        int(str(info["version"])),
        str(info["sha256"]),
        task,
        int(str(info["feature_dim"])) if info.get("feature_dim") is not None else None,
        # classifiers always score; a region model lists its scores output after its features
        task == "classification" or len(outputs) > 1,
    )


def header_size(blob: bytes) -> tuple[int, int] | None:
    """(width, height) as boxes refer to them (after EXIF orientation), from the header alone; None when
    it does not parse, which the server then reports as the image's error.

    A header past Pillow's own bomb guard is such an image too: the server refuses it as
    ``image-too-large`` in its own words, with its own limit. Pillow's warning for a header between its
    guard's two levels is not ours to print: the server's limit decides, per image, in errors.jsonl.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(blob)) as image:
                width, height = image.size
                turned = image.getexif().get(_ORIENTATION) in _TRANSPOSED
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (height, width) if turned else (width, height)


@dataclass(frozen=True)
class _Ready:
    item: Item
    blob: bytes
    size: tuple[int, int]
    boxes: np.ndarray | None  # checked (k, 4) float32 for region models, None for classifiers


class HttpExtractor:
    def __init__(self, client: AsyncPoolserveClient, job: JobSpec, concurrency: int, max_boxes: int):
        self._client, self._job = client, job
        self._slots = asyncio.Semaphore(concurrency)
        self._max_boxes = max_boxes

    def _ready(self, item: Item) -> _Ready:
        blob = read_image_file(item, self._job.limits.max_file_bytes)
        size = header_size(blob)
        if item.boxes is None:
            return _Ready(item, blob, size or (0, 0), None)
        if size is None:  # not an image: sent without boxes, so the server refuses it in its own words
            return _Ready(item, blob, (0, 0), np.zeros((0, 4), np.float32))
        try:
            return _Ready(item, blob, size, check_image_boxes(item.boxes, size, self._job.limits.max_boxes))
        except ServiceError as exc:
            raise InputError(slug(type(exc)), image_detail(exc.detail)) from None

    async def _request(self, ready: list[_Ready]) -> tuple[list[ImageResult], list[ItemError]]:
        model, job = self._job.model, self._job
        try:
            async with self._slots:
                blobs = [r.blob for r in ready]
                if not model.is_region:
                    answer = await self._client.classify(model.name, blobs, job.top_k)
                    return [
                        ImageResult(r.item.key, r.size, None, None, None, Ranked.from_predictions([p]))
                        for r, p in zip(ready, answer.predictions, strict=True)
                    ], []
                boxes = [r.boxes for r in ready]
                regions = await self._client.features(model.name, blobs, boxes, job.top_k, job.encoding)
        except BadInput as exc:
            if len(ready) > 1:
                return await self._each(ready)
            return [], [ItemError(ready[0].item.key, exc.type.rsplit("/", 1)[-1], image_detail(exc.detail))]
        return [
            ImageResult(
                r.item.key,
                r.size,
                got.boxes,
                r.item.category_ids,
                got.features,
                Ranked.from_predictions(got.predictions) if got.predictions is not None else None,
            )
            for r, got in zip(ready, regions.images, strict=True)
        ], []

    async def _each(self, ready: list[_Ready]) -> tuple[list[ImageResult], list[ItemError]]:
        outcomes = await asyncio.gather(*(self._request([r]) for r in ready))
        return [x for o in outcomes for x in o[0]], [e for o in outcomes for e in o[1]]

    async def _batch(self, items: Sequence[Item]) -> tuple[list[ImageResult], list[ItemError]]:
        ready, errors = [], []
        for item in items:
            try:
                ready.append(self._ready(item))
            except InputError as exc:
                errors.append(ItemError(item.key, exc.reason, exc.detail))
        results: list[ImageResult] = []
        for request in self._requests(ready):
            done, failed = await self._request(request)
            results += done
            errors += failed
        return results, errors

    def _requests(self, ready: list[_Ready]) -> list[list[_Ready]]:
        """Consecutive images, at most ``batch_size`` and ``max_boxes`` boxes per request."""
        requests: list[list[_Ready]] = []
        boxes = 0
        for r in ready:
            count = len(r.boxes) if r.boxes is not None else 0
            if not requests or len(requests[-1]) >= self._job.batch_size or boxes + count > self._max_boxes:
                requests.append([])
                boxes = 0
            requests[-1].append(r)
            boxes += count
        return requests

    async def run(self, out: Path, shard: Shard, report: ProgressSink) -> None:
        size = self._job.batch_size

        async def reported(items: Sequence[Item]) -> tuple[list[ImageResult], list[ItemError]]:
            done, failed = await self._batch(items)
            boxes = sum(len(r.boxes) for r in done if r.boxes is not None)
            report(Progress(len(done) + len(failed), boxes, len(failed)))
            return done, failed

        batches = [shard.items[i : i + size] for i in range(0, len(shard.items), size)]
        outcomes = await asyncio.gather(*(reported(b) for b in batches))
        results = [r for done, _ in outcomes for r in done]
        errors = [e for _, failed in outcomes for e in failed]
        write_shard(out, shard.index, rows.table(self._job, results), _in_item_order(errors, shard))


def _in_item_order(errors: list[ItemError], shard: Shard) -> list[ItemError]:
    position = {item.key: n for n, item in enumerate(shard.items)}
    return sorted(errors, key=lambda e: position[e.image])


async def run_http(
    client: AsyncPoolserveClient,
    job: JobSpec,
    out: Path,
    shards: Sequence[Shard],
    concurrency: int,
    report: ProgressSink,
    max_boxes_per_request: int = 1024,
) -> None:
    extractor = HttpExtractor(client, job, concurrency, max_boxes_per_request)
    for shard in shards:
        await extractor.run(out, shard, report)
