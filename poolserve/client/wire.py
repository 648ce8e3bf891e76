"""What goes over the wire, shared by the sync and async clients: requests built, responses parsed.

Transport (httpx's ``Client`` or ``AsyncClient``) and waiting are the only differences between the two.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import quote

import httpx
import numpy as np

from poolserve.client.errors import ConnectionFailed, Unavailable, error_from, refused, unexpected_answer

ImageInput = bytes | str | os.PathLike[str]
Encoding = Literal["float32", "float16"]
T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    score: float


@dataclass(frozen=True)
class ClassifyResult:
    model: str
    version: int
    predictions: list[list[Prediction]]  # per image, best first


@dataclass(frozen=True)
class ImageRegions:
    boxes: np.ndarray  # (k, 4) float32, as sent, in original image pixels
    features: np.ndarray  # (k, D) float32, or float16 when asked for
    predictions: list[list[Prediction]] | None  # per box, best first; None for models without scores


@dataclass(frozen=True)
class FeaturesResult:
    model: str
    version: int
    feature_dim: int
    images: list[ImageRegions]


@dataclass(frozen=True)
class ModelSummary:
    name: str
    version: int
    status: str  # "loading", "ready" or "failed"
    task: str | None
    labels: list[str]
    feature_dim: int | None
    sha256: str | None
    info: dict[str, Any]  # the full GET /v1/models entry


@dataclass(frozen=True)
class Call:
    """One HTTP request, ready for either transport."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: dict[str, str] | None = None
    boxes_sent: tuple[int, ...] = ()  # per image sent, its box count (0 for classify): what to get back


def _bytes(image: object, index: int) -> bytes:
    if isinstance(image, bytes):
        return image
    if not isinstance(image, str | os.PathLike):
        raise refused(
            f"images[{index}] is a {type(image).__name__}: pass an encoded image's bytes or a file path "
            "(encode an array as PNG first)"
        )
    return Path(image).read_bytes()


def _files(images: Sequence[ImageInput]) -> list[tuple[str, tuple[str, bytes, str]]]:
    if isinstance(images, str | bytes | os.PathLike):
        raise refused("images is a list of images: pass [image], not one image")
    if not images:
        raise refused("no images: pass at least one")
    # The service sniffs the format from the bytes; the part's own media type is not trusted.
    return [
        ("images", (f"image-{i}", _bytes(im, i), "application/octet-stream")) for i, im in enumerate(images)
    ]


def _model_path(name: str, route: str) -> str:
    """The route's path for model ``name``, quoted, so that a name holding '?' or '#' stays the name."""
    if "/" in name or name in ("", ".", ".."):  # servers undo the quoting of these: another path
        raise refused(f"no model can be named {name!r}")
    return f"/v1/models/{quote(name, safe='')}/{route}"


def _top_k(top_k: int | None) -> dict[str, Any]:
    """Sent only when asked for: otherwise the server's default (5, or its max_top_k if lower)."""
    return {} if top_k is None else {"top_k": top_k}


def classify_call(name: str, images: Sequence[ImageInput], top_k: int | None) -> Call:
    files = _files(images)
    return Call("POST", _model_path(name, "classify"), _top_k(top_k), files, boxes_sent=(0,) * len(files))


def features_call(
    name: str, images: Sequence[ImageInput], boxes: Sequence[Any], top_k: int | None, encoding: Encoding
) -> Call:
    files = _files(images)
    if len(boxes) != len(images):
        raise refused(f"boxes needs one list per image: {len(boxes)} lists for {len(images)} images")
    if encoding not in ("float32", "float16"):
        raise refused(f"encoding {encoding!r}: float32 or float16")
    per_image = []
    for i, image_boxes in enumerate(boxes):
        try:
            array = np.asarray(image_boxes, np.float64).reshape(-1, 4)
        except (ValueError, TypeError):
            raise refused(f"boxes[{i}] must be a list of [x1, y1, x2, y2] boxes (4 numbers each)") from None
        if not np.isfinite(array).all():
            raise refused(f"boxes[{i}] holds NaN or infinity; coordinates are finite numbers")
        per_image.append(array.tolist())
    wire_encoding = "float16-base64" if encoding == "float16" else "float32"
    params = {**_top_k(top_k), "encoding": wire_encoding}
    return Call(
        "POST",
        _model_path(name, "features"),
        params,
        files,
        {"boxes": json.dumps(per_image, allow_nan=False)},
        tuple(map(len, per_image)),
    )


def checked(response: httpx.Response) -> Any:
    """The JSON body of a 2xx response; the typed error otherwise."""
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise unexpected_answer(
                response.status_code, f"the answer is not JSON ({kind}): a proxy in between?"
            ) from None
    raise error_from(response)


class _MismatchError(ValueError):
    """A well-formed answer to another request: not one result per image, or per box, sent."""


def _shaped(parse: Callable[P, T]) -> Callable[P, T]:
    """``parse``, raising the client's own error for a body without the fields it reads."""

    @functools.wraps(parse)
    def reading(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return parse(*args, **kwargs)
        except _MismatchError as exc:
            raise unexpected_answer(200, f"the answer does not match the request: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise unexpected_answer(
                200, f"the answer lacks what this client reads ({type(exc).__name__}: {exc})"
            ) from None

    return reading


def retry_wait(exc: Exception, attempt: int, max_wait_s: float) -> float | None:
    """Seconds to wait before retrying after ``exc``, or None when it must not be retried.

    503 (loading, queue full) honours ``Retry-After``; refused or dropped connections back off
    exponentially. Other errors are the caller's to handle: retrying a bad image cannot help.
    """
    if isinstance(exc, Unavailable):
        wait = exc.retry_after_s if exc.retry_after_s is not None else 0.5 * 2**attempt
    elif isinstance(exc, ConnectionFailed) and exc.retryable:
        wait = 0.5 * 2**attempt
    else:
        return None
    return min(wait, max_wait_s)


def _predictions(raw: list[dict[str, Any]]) -> list[Prediction]:
    return [Prediction(str(p["label"]), int(p["index"]), float(p["score"])) for p in raw]


@_shaped
def parse_classify(body: dict[str, Any], boxes_sent: tuple[int, ...]) -> ClassifyResult:
    _one_result_per_image(body["results"], boxes_sent)
    return ClassifyResult(
        body["model"], body["version"], [_predictions(r["predictions"]) for r in body["results"]]
    )


def _one_result_per_image(results: list[Any], boxes_sent: tuple[int, ...]) -> None:
    # A short answer zipped against the request would pair results with the wrong images, silently.
    if len(results) != len(boxes_sent):
        raise _MismatchError(f"{len(results)} results for the {len(boxes_sent)} images sent")


def _features(raw: list[Any], dim: int, encoding: str) -> np.ndarray:
    if encoding == "float16-base64":
        rows = [np.frombuffer(base64.b64decode(f), "<f2") for f in raw]
        return np.stack(rows) if rows else np.zeros((0, dim), np.float16)
    return np.asarray(raw, np.float32).reshape(-1, dim)


@_shaped
def parse_features(body: dict[str, Any], boxes_sent: tuple[int, ...]) -> FeaturesResult:
    dim, encoding = int(body["feature_dim"]), str(body["encoding"])
    _one_result_per_image(body["results"], boxes_sent)
    images = []
    for i, (result, sent) in enumerate(zip(body["results"], boxes_sent, strict=True)):
        boxes = result["boxes"]
        if len(boxes) != sent:
            raise _MismatchError(f"{len(boxes)} boxes in result {i} for the {sent} sent")
        with_scores = bool(boxes) and boxes[0].get("predictions") is not None
        images.append(
            ImageRegions(
                boxes=np.asarray([b["box"] for b in boxes], np.float32).reshape(-1, 4),
                features=_features([b["features"] for b in boxes], dim, encoding),
                predictions=[_predictions(b["predictions"]) for b in boxes] if with_scores else None,
            )
        )
    return FeaturesResult(body["model"], body["version"], dim, images)


@_shaped
def parse_models(body: dict[str, Any]) -> list[ModelSummary]:
    return [parse_model(m) for m in body["models"]]


@_shaped
def parse_model(info: dict[str, Any]) -> ModelSummary:
    return ModelSummary(
        name=info["name"],
        version=info["version"],
        status=info["status"],
        task=info.get("task"),
        labels=list(info.get("labels") or []),
        feature_dim=info.get("feature_dim"),
        sha256=info.get("sha256"),
        info=info,
    )
