"""Prometheus metrics, one ``CollectorRegistry`` per app so that apps (and tests) never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS = (0.0, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_GC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_GC_GENERATIONS = 3


class ServiceMetrics:
    """Also the batchers' ``BatchObserver``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["method", "route", "model", "status"]
        self.requests = Counter(
            "poolserve_http_requests", "HTTP requests by route template", labels, registry=self.registry
        )
        self.latency = Histogram(
            "poolserve_http_request_duration_seconds",
            "HTTP request latency by route template",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "poolserve_inference_duration_seconds",
            "onnxruntime time per batch",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "poolserve_batch_size",
            "images per batch",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        # The batching window's latency cost, which the request latency alone does not separate out; the
        # le="0.0" bucket counts the batches that did not wait at all.
        self.window_wait = Histogram(
            "poolserve_batch_window_wait_seconds",
            "time a batch was held open waiting for more requests",
            ["model"],
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.depth = Gauge(
            "poolserve_queue_depth", "requests waiting per model", ["model"], registry=self.registry
        )
        # Every collection stops the event loop and each request in flight: a source of tail latency
        # that the request histograms show but cannot name (poolserve.service.gc_tuning).
        self.gc_pause = Histogram(
            "poolserve_gc_pause_seconds",
            "time the interpreter's cyclic garbage collector stopped the process, per collection",
            ["generation"],
            buckets=_GC_BUCKETS,
            registry=self.registry,
        )
        self._gc_children = [self.gc_pause.labels(str(g)) for g in range(_GC_GENERATIONS)]
        self.gc_frozen = Gauge(
            "poolserve_gc_frozen_objects",
            "objects moved out of the collector's reach after the models loaded (POOLSERVE_GC_FREEZE)",
            registry=self.registry,
        )
        # labels() validates and locks on every call; the label sets are few, so keep their children.
        self._request_children: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}
        self._model_children: dict[str, tuple[Histogram, Histogram, Gauge, Histogram]] = {}
        self.model_ready = Gauge(
            "poolserve_model_ready", "1 when the model serves, else 0", ["model"], registry=self.registry
        )

    def observe_request(self, method: str, route: str, model: str, status: int, seconds: float) -> None:
        labels = (method, route, model, str(status))
        children = self._request_children.get(labels)
        if children is None:
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[labels] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch_ran(self, model: str, size: int, seconds: float) -> None:
        batch_size, inference, _, _ = self._of_model(model)
        batch_size.observe(size)
        inference.observe(seconds)

    def queue_depth(self, model: str, depth: int) -> None:
        self._of_model(model)[2].set(depth)

    def window_waited(self, model: str, seconds: float) -> None:
        self._of_model(model)[3].observe(seconds)

    def gc_paused(self, generation: int, seconds: float) -> None:
        self._gc_children[generation].observe(seconds)

    def _of_model(self, model: str) -> tuple[Histogram, Histogram, Gauge, Histogram]:
        children = self._model_children.get(model)
        if children is None:
            children = (
                self.batch_size.labels(model),
                self.inference.labels(model),
                self.depth.labels(model),
                self.window_wait.labels(model),
            )
            self._model_children[model] = children
        return children
