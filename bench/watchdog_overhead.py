"""What the inference watchdog adds to the hot path, per request and per batch.

    python -m bench.watchdog_overhead

Per request: ``ModelGuard.run`` (track the waiting task) around an awaitable that is already done,
against awaiting it bare. Per batch: ``TimedHandler.run`` (two clock reads and the moving average)
around a handler that does nothing, against calling it bare. Best of five rounds of 200,000 calls each.
Writes bench/results/watchdog_overhead.json with the git commit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

from bench.reduced_jpeg import RESULTS, git_commit
from poolserve.service.runtime.watchdog import ModelGuard, TimedHandler

CALLS = 200_000
ROUNDS = 5


class Nothing:
    def size(self, item: int) -> int:
        return 1

    def run(self, items: Sequence[int]) -> Sequence[int]:
        return items


async def submit(item: int) -> int:
    return item


async def per_request_us() -> tuple[float, float]:
    guard: ModelGuard[int, int] = ModelGuard("m", TimedHandler(Nothing()))
    bare, guarded = float("inf"), float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(CALLS):
            await submit(i)
        bare = min(bare, (time.perf_counter() - started) / CALLS * 1e6)
        started = time.perf_counter()
        for i in range(CALLS):
            await guard.run(submit, i)
        guarded = min(guarded, (time.perf_counter() - started) / CALLS * 1e6)
    return bare, guarded


def per_batch_us() -> tuple[float, float]:
    inner, timed = Nothing(), TimedHandler(Nothing())
    bare, wrapped = float("inf"), float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            inner.run([1])
        bare = min(bare, (time.perf_counter() - started) / CALLS * 1e6)
        started = time.perf_counter()
        for _ in range(CALLS):
            timed.run([1])
        wrapped = min(wrapped, (time.perf_counter() - started) / CALLS * 1e6)
    return bare, wrapped


def main() -> None:
    request_bare, request_guarded = asyncio.run(per_request_us())
    batch_bare, batch_timed = per_batch_us()
    result = {
        "commit": git_commit(),
        "per_request_us": {
            "bare": request_bare,
            "guarded": request_guarded,
            "added": request_guarded - request_bare,
        },
        "per_batch_us": {"bare": batch_bare, "timed": batch_timed, "added": batch_timed - batch_bare},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "watchdog_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
