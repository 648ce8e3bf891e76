"""The interpreter's cyclic garbage collector while serving: freeze what start-up built, time every pause.

A full (generation 2) collection walks every container object the process holds, and once the models
are in that is mostly objects that live as long as the process: FastAPI's routes and schemas, pydantic's
validators, the numpy and onnxruntime bindings. Under load on the digit model each such walk stopped the
event loop, and every request in flight, for 60-70 ms on average, a few times a minute: most of the p99
at 32 clients (``python -m bench.gc``, bench/results/gc.md). ``gc.freeze`` once loading is done moves those
objects into the permanent generation, out of the collector's reach; full collections then walk only
what was made since. Garbage made later is collected as before.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any


def freeze_loaded_heap() -> int:
    """Collect what start-up left behind, then freeze every object still alive; returns how many
    objects the permanent generation holds.

    Called once the models are in, before the first request: an object frozen while it is alive and that
    later becomes garbage in a reference cycle is never collected, so nothing a request makes may be here.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauseRecorder:
    """While entered, reports every collection as ``observe(generation, seconds)`` (``gc.callbacks``).

    The collector runs in whichever thread allocates when a threshold is crossed, and never two at once,
    so one start time is enough. The pauses are the whole process's: an app sharing its interpreter with
    another sees the other's collections too.
    """

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self._observe = observe
        self._started = 0.0

    def __enter__(self) -> GcPauseRecorder:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._observe(info["generation"], time.perf_counter() - self._started)
