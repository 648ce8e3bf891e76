"""The ``ray`` engine: the same shard function, run by Ray Data on a local Ray or an existing cluster.

The dataset holds one row per pending shard; ``map_batches`` hands each to an actor of an
``ActorPoolStrategy`` pool (one onnxruntime session per actor, loaded once), which extracts the shard and
writes it with the same atomic rename as the local engine. Ray's own ``write_parquet`` is not used: it
names files after its tasks, which would break the deterministic shard names ``--resume`` relies on. On a
cluster, ``--repository`` and ``--output`` must be paths every node sees (a shared filesystem).

Ray is imported here only, inside the function: serving never imports it (``pip install 'poolserve[ray]'``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from poolserve.extract.dataset import Item
from poolserve.extract.job import JobSpec, LocalModel
from poolserve.extract.pipeline import Progress, ProgressSink, ShardExtractor
from poolserve.extract.shards import Shard


class ShardActor:
    """The callable class Ray Data instantiates once per actor."""

    def __init__(self, model: LocalModel, job: JobSpec, out: str) -> None:
        # One CPU per actor: onnxruntime gets one thread and decoding one more, which overlap.
        self._extractor = ShardExtractor(model, job, Path(out), decode_workers=1, threads=1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        totals = []
        for index, items in zip(batch["shard"], batch["items"], strict=True):
            shard = Shard(int(index), [Item(**item) for item in json.loads(str(items))])
            totals.append(self._extractor.run(shard))
        return {
            "images": np.asarray([t.images for t in totals]),
            "boxes": np.asarray([t.boxes for t in totals]),
            "errors": np.asarray([t.errors for t in totals]),
        }


def run_ray(
    model: LocalModel,
    job: JobSpec,
    out: Path,
    shards: Sequence[Shard],
    workers: int,
    address: str | None,
    report: ProgressSink,
) -> None:
    """``workers``: actors. ``address``, else ``RAY_ADDRESS`` (a RayJob's entrypoint has it set): the
    cluster to use; with neither, a local Ray with ``workers`` CPUs, shut down afterwards."""
    if not shards:
        return  # a resumed job with nothing left: no cluster to start
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        DataContext.get_current().enable_progress_bars = False  # ours reports images, boxes and errors
        rows = [{"shard": s.index, "items": json.dumps([asdict(i) for i in s.items])} for s in shards]
        results = ray.data.from_items(rows).map_batches(
            ShardActor,
            fn_constructor_kwargs={"model": model, "job": job, "out": str(out)},
            batch_size=1,
            compute=ActorPoolStrategy(size=workers),
            num_cpus=1,
            batch_format="numpy",
        )
        for done in results.iter_rows():
            report(Progress(int(done["images"]), int(done["boxes"]), int(done["errors"])))
    finally:
        ray.shutdown()
