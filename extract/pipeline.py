"""One shard, start to finish: batches decoded in worker threads while the previous batch runs through
the model, rows written when the shard is done. The local and Ray engines both run shards with this."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from poolserve.extract import rows
from poolserve.extract.dataset import Item
from poolserve.extract.infer import ModelRunner
from poolserve.extract.job import JobSpec, LocalModel
from poolserve.extract.prepare import ItemError, PreparedBatch, prepare_batch
from poolserve.extract.rows import ImageResult
from poolserve.extract.shards import Shard, write_shard


@dataclass(frozen=True)
class Progress:
    """Work finished since the last report."""

    images: int
    boxes: int
    errors: int


ProgressSink = Callable[[Progress], None]


class ShardExtractor:
    """Owns a model session and the decode threads. ``decode_workers`` threads prepare up to that many
    batches ahead of the model, which bounds memory to a few batches plus one shard's rows."""

    def __init__(self, model: LocalModel, job: JobSpec, out: Path, decode_workers: int, threads: int = 0):
        self._model, self._job, self._out = model, job, out
        self._runner = ModelRunner(model, job, threads)
        self._workers = max(1, decode_workers)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="extract-decode")

    def _prepare(self, items: list[Item]) -> Future[PreparedBatch]:
        return self._pool.submit(prepare_batch, items, self._model.manifest.preprocessing, self._job.limits)

    def run(self, shard: Shard, report: ProgressSink | None = None) -> Progress:
        """Extract and write one shard; returns its totals."""
        size = self._job.batch_size
        batches = iter([shard.items[i : i + size] for i in range(0, len(shard.items), size)])
        ahead: deque[Future[PreparedBatch]] = deque(
            self._prepare(b) for _, b in zip(range(self._workers), batches, strict=False)
        )
        results: list[ImageResult] = []
        errors: list[ItemError] = []
        while ahead:
            prepared = ahead.popleft().result()
            following = next(batches, None)
            if following is not None:
                ahead.append(self._prepare(following))
            done = self._runner.infer(prepared)
            results += done
            errors += prepared.errors
            if report is not None:
                report(Progress(len(done) + len(prepared.errors), _boxes(done), len(prepared.errors)))
        write_shard(self._out, shard.index, rows.table(self._job, results), errors)
        return Progress(len(shard.items), _boxes(results), len(errors))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _boxes(results: list[ImageResult]) -> int:
    return sum(len(r.boxes) for r in results if r.boxes is not None)
