"""A small Python client for a running poolserve: classify, region features and the model listing.

Sync (``PoolserveClient``) and async (``AsyncPoolserveClient``), numpy arrays out, the API key sent as a
bearer token, 503s retried as ``Retry-After`` says, and every refusal raised as a typed ``PoolserveError``
built from the service's problem+json body; no answer at all (refused, unresolved, timed out) raises
``ConnectionFailed``, also a ``PoolserveError``. Imports only httpx and numpy, which
``pip install 'poolserve[client]'`` adds to the base install (the base install brings the serving runtime).

    with PoolserveClient("http://localhost:8000") as client:
        result = client.features("digits-roialign", ["page.png"], [[[10, 10, 40, 60]]])
        result.images[0].features  # (1, 128) float32
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from poolserve.client.errors import (
    BadInput,
    ConnectionFailed,
    ModelNotFound,
    PoolserveError,
    ServerError,
    Unauthorized,
    Unavailable,
    connection_failed,
)
from poolserve.client.wire import (
    Call,
    ClassifyResult,
    Encoding,
    FeaturesResult,
    ImageInput,
    ImageRegions,
    ModelSummary,
    Prediction,
    checked,
    classify_call,
    features_call,
    parse_classify,
    parse_features,
    parse_model,
    parse_models,
    retry_wait,
)

__all__ = [
    "AsyncPoolserveClient",
    "BadInput",
    "ClassifyResult",
    "ConnectionFailed",
    "FeaturesResult",
    "ImageRegions",
    "ModelNotFound",
    "ModelSummary",
    "PoolserveClient",
    "PoolserveError",
    "Prediction",
    "ServerError",
    "Unauthorized",
    "Unavailable",
]


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {checked_api_key(api_key)}"} if api_key else {}


def checked_api_key(api_key: str | None) -> str | None:
    """``api_key``, unless it holds what an HTTP header cannot carry."""
    if api_key and not (api_key.isascii() and api_key.isprintable()):
        raise ValueError("api_key must be printable ASCII: it is sent in an HTTP header")
    return api_key


def checked_base_url(base_url: str, name: str = "base_url") -> httpx.URL:
    """``base_url`` as httpx reads it; a mistake is named here (as ``name``), not later as a failed
    connection."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{name} {base_url!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{name} {base_url!r} must be http://host:port or https://host:port")
    return url


def checked_timeout(timeout_s: float) -> float:
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
    return timeout_s


class PoolserveClient:
    """Blocking client. ``retries``: how many times a 503 or a refused connection is retried, waiting
    what ``Retry-After`` says (else backing off exponentially), never more than ``max_wait_s``.
    ``transport``: a synchronous httpx transport (``httpx.HTTPTransport(...)``, ``httpx.MockTransport``);
    to call an app in-process, use ``AsyncPoolserveClient`` with ``httpx.ASGITransport(app)``, which is
    asynchronous, inside the app's lifespan."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 5,
        max_wait_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(
                f"PoolserveClient needs a synchronous httpx transport, not {type(transport).__name__}; "
                "for an asynchronous one such as httpx.ASGITransport, use AsyncPoolserveClient"
            )
        self._http = httpx.Client(
            base_url=checked_base_url(base_url),
            headers=_headers(api_key),
            timeout=checked_timeout(timeout_s),
            transport=transport,
        )
        self._retries, self._max_wait_s = retries, max_wait_s

    def models(self) -> list[ModelSummary]:
        return parse_models(self._send(Call("GET", "/v1/models")))

    def model(self, name: str) -> ModelSummary:
        return parse_model(self._send(Call("GET", f"/v1/models/{name}")))

    def classify(self, name: str, images: Sequence[ImageInput], top_k: int | None = None) -> ClassifyResult:
        call = classify_call(name, images, top_k)
        return parse_classify(self._send(call), call.boxes_sent)

    def features(
        self,
        name: str,
        images: Sequence[ImageInput],
        boxes: Sequence[Any],
        top_k: int | None = None,
        encoding: Encoding = "float32",
    ) -> FeaturesResult:
        """``boxes``: per image, a (k, 4) array or list of ``[x1, y1, x2, y2]`` in original pixels."""
        call = features_call(name, images, boxes, top_k, encoding)
        return parse_features(self._send(call), call.boxes_sent)

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                return checked(self._request(call))
            except PoolserveError as exc:
                wait = retry_wait(exc, attempt, self._max_wait_s)
                if wait is None or attempt >= self._retries:
                    raise
                attempt += 1
                time.sleep(wait)

    def _request(self, call: Call) -> httpx.Response:
        try:
            return self._http.request(
                call.method, call.path, params=call.params, files=call.files, data=call.data
            )
        except httpx.TransportError as exc:
            raise connection_failed(exc) from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncPoolserveClient:
    """The same calls as ``PoolserveClient``, awaitable; one instance serves many concurrent calls.
    ``transport``: an asynchronous httpx transport, e.g. ``httpx.ASGITransport(app)`` to call an app
    in-process (inside its lifespan: ``async with app.router.lifespan_context(app)``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 5,
        max_wait_s: float = 30.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(max_connections=max_connections)
        self._http = httpx.AsyncClient(
            base_url=checked_base_url(base_url),
            headers=_headers(api_key),
            timeout=checked_timeout(timeout_s),
            limits=limits,
            transport=transport,
        )
        self._retries, self._max_wait_s = retries, max_wait_s

    async def models(self) -> list[ModelSummary]:
        return parse_models(await self._send(Call("GET", "/v1/models")))

    async def model(self, name: str) -> ModelSummary:
        return parse_model(await self._send(Call("GET", f"/v1/models/{name}")))

    async def classify(
        self, name: str, images: Sequence[ImageInput], top_k: int | None = None
    ) -> ClassifyResult:
        call = classify_call(name, images, top_k)
        return parse_classify(await self._send(call), call.boxes_sent)

    async def features(
        self,
        name: str,
        images: Sequence[ImageInput],
        boxes: Sequence[Any],
        top_k: int | None = None,
        encoding: Encoding = "float32",
    ) -> FeaturesResult:
        call = features_call(name, images, boxes, top_k, encoding)
        return parse_features(await self._send(call), call.boxes_sent)

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                return checked(await self._request(call))
            except PoolserveError as exc:
                wait = retry_wait(exc, attempt, self._max_wait_s)
                if wait is None or attempt >= self._retries:
                    raise
                attempt += 1
                await asyncio.sleep(wait)

    async def _request(self, call: Call) -> httpx.Response:
        try:
            return await self._http.request(
                call.method, call.path, params=call.params, files=call.files, data=call.data
            )
        except httpx.TransportError as exc:
            raise connection_failed(exc) from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
