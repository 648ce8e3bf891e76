"""The models this app serves: discovered in the repository, loaded in the background, each with a status.

A request looks its model up once (``registry.get(name).serving()``) and hands the ``ServingModel`` down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import onnxruntime as ort

from poolserve.repository.manifest import BatchingDefaults, Manifest
from poolserve.repository.store import (
    EntryLocation,
    RepositoryError,
    discover,
    latest_versions,
    read_manifest,
    verified_model_path,
)
from poolserve.service.errors import ModelNotFound, ModelNotReady, WrongTask
from poolserve.service.runtime.batch_handlers import batch_handler
from poolserve.service.runtime.batcher import BatchConfig, BatchObserver, BatchWindow, DynamicBatcher
from poolserve.service.runtime.graph_check import GraphMismatchError, check_against_graph
from poolserve.service.runtime.model_io import TaskIO, model_io
from poolserve.service.runtime.sessions import SessionConfig, create_session, provider_in_use
from poolserve.service.runtime.watchdog import ModelGuard, TimedHandler

log = logging.getLogger(__name__)

IOT = TypeVar("IOT", bound=TaskIO)
TaskIOT = TypeVar("TaskIOT", bound=TaskIO)


class ModelStatus(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


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


@dataclass(frozen=True)
class BatchOverrides:
    """Settings that, when given, win over each manifest's batching defaults."""

    max_batch_size: int | None
    max_queue_delay_ms: float | None
    queue_capacity: int
    inline_max_ms: float = 0.0
    window: BatchWindow = "measured"

    def config(self, defaults: BatchingDefaults) -> BatchConfig:
        """The batching one model runs with: these overrides where set, else its manifest's defaults."""
        return BatchConfig(
            max_batch_size=self.max_batch_size or defaults.max_batch_size,
            max_queue_delay_ms=(
                defaults.max_queue_delay_ms if self.max_queue_delay_ms is None else self.max_queue_delay_ms
            ),
            queue_capacity=self.queue_capacity,
            inline_max_ms=self.inline_max_ms,
            window=self.window,
        )


@dataclass
class ModelEntry:
    """A model in the repository, whatever its state; ``model`` is the loaded model once it is ready."""

    name: str
    version: int
    location: EntryLocation
    manifest: Manifest | None = None  # None when the manifest itself is unreadable
    status: ModelStatus = ModelStatus.LOADING
    reason: str | None = None  # why it failed, for operators and the API
    model: ServingModel[TaskIO] | None = field(default=None, repr=False)

    def serving(self) -> ServingModel[TaskIO]:
        """The loaded model, or ``ModelNotReady`` (503) saying why it cannot serve now."""
        if self.model is None:
            if self.status is ModelStatus.FAILED:
                raise ModelNotReady(
                    f"model {self.name!r} failed to load; GET /v1/models/{self.name} says why"
                )
            raise ModelNotReady(f"model {self.name!r} is still loading", retry_after_s=5)
        self.model.guard.refuse_if_stalled()
        return self.model


class ModelRegistry:
    def __init__(
        self,
        root: Path,
        session_config: SessionConfig,
        batching: BatchOverrides,
        observer: BatchObserver | None = None,
    ) -> None:
        self.root = root
        self._session_config = session_config
        self._batching = batching
        self._observer = observer
        self._entries: dict[str, ModelEntry] = {}
        self._loaded = asyncio.Event()

    def discover(self) -> None:
        """Find the newest version of every model; reading manifests is cheap, loading comes later."""
        try:
            locations = latest_versions(discover(self.root, self._skipped))
        except RepositoryError as exc:
            log.error("model repository unusable: %s", exc)
            locations = []
        for location in locations:
            entry = ModelEntry(location.name, location.version, location)
            try:
                entry.manifest = read_manifest(location)
            except RepositoryError as exc:
                self._fail(entry, str(exc))
            self._entries[entry.name] = entry
        if not self._entries:
            log.error("no models found in %s", self.root)

    def _skipped(self, folder: Path, why: str) -> None:
        log.warning("model repository: skipping %s: %s", folder.relative_to(self.root), why)

    async def load_all(self) -> None:
        """Load every discovered model, one at a time, off the event loop; failures stay per model."""
        try:
            for entry in self._entries.values():
                if entry.status is ModelStatus.LOADING and entry.manifest is not None:
                    await self._load(entry, entry.manifest)
        finally:
            self._loaded.set()

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    @property
    def is_ready(self) -> bool:
        """Ready once loading finished and at least one model serves; a failed model does not block others.

        A stalled model (an inference that never returned) makes the whole process unready: it is about to
        be replaced, and a load balancer should send its traffic elsewhere meanwhile.
        """
        if any(guard.stalled for guard in self.guards()):
            return False
        return self._loaded.is_set() and any(e.status is ModelStatus.READY for e in self._entries.values())

    def guards(self) -> list[ModelGuard[Any, Any]]:
        return [e.model.guard for e in self._entries.values() if e.model is not None]

    def entries(self) -> list[ModelEntry]:
        return sorted(self._entries.values(), key=lambda e: e.name)

    def get(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"no model named {name!r}")
        return entry

    def begin_shutdown(self) -> None:
        """The server's grace period starts: requests it cancels at the end answer 503, not 500."""
        for guard in self.guards():
            guard.shutting_down = True

    async def close(self, drain_s: float = 2.0) -> list[str]:
        """Stop every batcher; returns the models whose batch in progress did not finish within ``drain_s``.

        Closing a batcher waits for its worker thread, which would be forever for an inference that never
        returns: such a model is left as it is, and the caller ends the process without waiting for it.
        """
        stuck = []
        for model in (e.model for e in self._entries.values()):
            if model is None:
                continue
            deadline = time.monotonic() + drain_s
            while model.guard.handler.busy and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if model.guard.handler.busy:
                stuck.append(model.name)
            else:
                await model.batcher.close()
        return stuck

    async def _load(self, entry: ModelEntry, manifest: Manifest) -> None:
        try:
            session = await asyncio.to_thread(self._open, entry.location, manifest)
        except RepositoryError as exc:
            self._fail(entry, str(exc))
            return
        except Exception as exc:  # onnxruntime raises plain RuntimeErrors/Fail for broken graphs
            log.exception("model %s: onnxruntime could not load it", entry.name)
            self._fail(entry, f"onnxruntime could not load the model: {type(exc).__name__}")
            return
        io = model_io(manifest)
        handler = batch_handler(session, io)
        try:
            await asyncio.to_thread(check_against_graph, session, manifest, io, handler)
        except GraphMismatchError as exc:
            self._fail(entry, f"the manifest does not match the graph: {exc}")
            return
        timed: TimedHandler[Any, Any] = TimedHandler(handler)
        batcher = DynamicBatcher(entry.name, timed, self._batching.config(manifest.batching), self._observer)
        model = ServingModel(
            name=entry.name,
            version=entry.version,
            manifest=manifest,
            io=io,
            provider=provider_in_use(session),
            session=session,
            batcher=batcher,
            guard=ModelGuard(entry.name, timed),
        )
        batcher.start()
        entry.model, entry.status = model, ModelStatus.READY
        log.info("model %s v%d ready on %s", entry.name, entry.version, model.provider)

    def _open(self, location: EntryLocation, manifest: Manifest) -> ort.InferenceSession:
        return create_session(verified_model_path(location, manifest), self._session_config)

    def _fail(self, entry: ModelEntry, reason: str) -> None:
        log.error("model %s v%d failed to load: %s", entry.name, entry.version, reason)
        # The API shows the reason; server paths are nobody's business outside the repository.
        entry.status, entry.reason = ModelStatus.FAILED, reason.replace(str(self.root), "<repository>")
