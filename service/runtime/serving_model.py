"""A loaded model, as a request holds it: looked up once, then handed down to everything that serves it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import onnxruntime as ort

from poolserve.repository.manifest import Manifest
from poolserve.service.errors import WrongTask
from poolserve.service.runtime.batcher import DynamicBatcher
from poolserve.service.runtime.model_io import TaskIO
from poolserve.service.runtime.watchdog import ModelGuard

IOT = TypeVar("IOT", bound=TaskIO)
TaskIOT = TypeVar("TaskIOT", bound=TaskIO)


@dataclass(frozen=True)
class ServingModel(Generic[IOT]):
    """Everything serving a request needs from one model, all of it present: ``io`` says which tensor plays
    which role for the model's task, ``batcher`` queues requests for its session, ``guard`` refuses them
    once an inference stalled."""

    name: str
    version: int
    manifest: Manifest
    io: IOT
    provider: str  # the execution provider onnxruntime runs it on
    session: ort.InferenceSession = field(repr=False)
    batcher: DynamicBatcher[Any, Any] = field(repr=False)
    guard: ModelGuard[Any, Any] = field(repr=False)

    def for_task(self, io_type: type[TaskIOT]) -> ServingModel[TaskIOT]:
        """This model, typed for the task ``io_type`` belongs to; ``WrongTask`` (400) for another task."""
        if not isinstance(self.io, io_type):
            raise WrongTask(
                f"model {self.name!r} is a {self.manifest.task.value} model, not {io_type.task.value}"
            )
        return cast(ServingModel[TaskIOT], self)
