"""The models this app serves: discovered in the repository, loaded in the background, each with a status."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import onnxruntime as ort

from poolserve.repository.manifest import Manifest, Task
from poolserve.repository.store import (
    EntryLocation,
    RepositoryError,
    discover,
    latest_versions,
    read_manifest,
    verified_model_path,
)
from poolserve.service.errors import ModelNotFound, ModelNotReady
from poolserve.service.runtime.batch_handlers import ClassificationHandler, RegionHandler
from poolserve.service.runtime.batcher import BatchConfig, BatchObserver, DynamicBatcher
from poolserve.service.runtime.sessions import SessionConfig, create_session, provider_in_use
from poolserve.service.runtime.watchdog import ModelGuard, TimedHandler

log = logging.getLogger(__name__)


class ModelStatus(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class BatchOverrides:
    """Settings that, when given, win over each manifest's batching defaults."""

    max_batch_size: int | None
    max_queue_delay_ms: float | None
    queue_capacity: int
    inline_max_ms: float = 0.0


@dataclass
class ModelEntry:
    name: str
    version: int
    location: EntryLocation
    manifest: Manifest | None = None  # None when the manifest itself is unreadable
    status: ModelStatus = ModelStatus.LOADING
    reason: str | None = None  # why it failed, for operators and the API
    provider: str | None = None
    session: ort.InferenceSession | None = None
    batcher: DynamicBatcher[Any, Any] | None = field(default=None, repr=False)
    guard: ModelGuard[Any, Any] | None = field(default=None, repr=False)


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
            locations = latest_versions(discover(self.root))
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

    async def load_all(self) -> None:
        """Load every discovered model, one at a time, off the event loop; failures stay per model."""
        try:
            for entry in self._entries.values():
                if entry.status is ModelStatus.LOADING:
                    await self._load(entry)
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
        entries = self._entries.values()
        if any(e.guard is not None and e.guard.stalled for e in entries):
            return False
        return self._loaded.is_set() and any(e.status is ModelStatus.READY for e in entries)

    def guards(self) -> list[ModelGuard[Any, Any]]:
        return [e.guard for e in self._entries.values() if e.guard is not None]

    def entries(self) -> list[ModelEntry]:
        return sorted(self._entries.values(), key=lambda e: e.name)

    def get(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"no model named {name!r}")
        return entry

    def ready(self, name: str) -> ModelEntry:
        entry = self.get(name)
        if entry.status is ModelStatus.LOADING:
            raise ModelNotReady(f"model {name!r} is still loading", retry_after_s=5)
        if entry.status is ModelStatus.FAILED:
            raise ModelNotReady(f"model {name!r} failed to load; GET /v1/models/{name} says why")
        if entry.guard is not None:
            entry.guard.refuse_if_stalled()
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
        for entry in self._entries.values():
            if entry.batcher is None or entry.guard is None:
                continue
            deadline = time.monotonic() + drain_s
            while entry.guard.handler.busy and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if entry.guard.handler.busy:
                stuck.append(entry.name)
            else:
                await entry.batcher.close()
        return stuck

    async def _load(self, entry: ModelEntry) -> None:
        manifest = entry.manifest
        assert manifest is not None
        try:
            session = await asyncio.to_thread(self._open, entry.location, manifest)
        except RepositoryError as exc:
            self._fail(entry, str(exc))
            return
        except Exception as exc:  # onnxruntime raises plain RuntimeErrors/Fail for broken graphs
            log.exception("model %s: onnxruntime could not load it", entry.name)
            self._fail(entry, f"onnxruntime could not load the model: {type(exc).__name__}")
            return
        handler = ClassificationHandler if manifest.task is Task.CLASSIFICATION else RegionHandler
        entry.session = session
        entry.provider = provider_in_use(session)
        timed = TimedHandler(handler(session, manifest))
        entry.guard = ModelGuard(entry.name, timed)
        entry.batcher = DynamicBatcher(entry.name, timed, self._batch_config(manifest), self._observer)
        entry.batcher.start()
        entry.status = ModelStatus.READY
        log.info("model %s v%d ready on %s", entry.name, entry.version, entry.provider)

    def _open(self, location: EntryLocation, manifest: Manifest) -> ort.InferenceSession:
        return create_session(verified_model_path(location, manifest), self._session_config)

    def _batch_config(self, manifest: Manifest) -> BatchConfig:
        own = manifest.batching
        return BatchConfig(
            max_batch_size=self._batching.max_batch_size or own.max_batch_size,
            max_queue_delay_ms=(
                own.max_queue_delay_ms
                if self._batching.max_queue_delay_ms is None
                else self._batching.max_queue_delay_ms
            ),
            queue_capacity=self._batching.queue_capacity,
            inline_max_ms=self._batching.inline_max_ms,
        )

    def _fail(self, entry: ModelEntry, reason: str) -> None:
        log.error("model %s v%d failed to load: %s", entry.name, entry.version, reason)
        # The API shows the reason; server paths are nobody's business outside the repository.
        entry.status, entry.reason = ModelStatus.FAILED, reason.replace(str(self.root), "<repository>")
