"""The ``local`` engine: every pending shard, in order, through one ``ShardExtractor`` in this process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from poolserve.extract.job import JobSpec, LocalModel
from poolserve.extract.pipeline import ProgressSink, ShardExtractor
from poolserve.extract.shards import Shard


def run_local(
    model: LocalModel,
    job: JobSpec,
    out: Path,
    shards: Sequence[Shard],
    workers: int,
    threads: int,
    report: ProgressSink,
) -> None:
    """``workers``: decode threads; ``threads``: onnxruntime's intra-op threads (0: its own choice)."""
    extractor = ShardExtractor(model, job, out, decode_workers=workers, threads=threads)
    try:
        for shard in shards:
            extractor.run(shard, report)
    finally:
        extractor.close()
