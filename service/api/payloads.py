"""Request parsing: the three ways a client may send images, and boxes beside them, to plain bytes/arrays.

- ``multipart/form-data``: one or more files in field ``images`` (features: plus a ``boxes`` JSON field
  holding one list of boxes per image);
- a raw image body (``Content-Type: image/png`` etc.; classification only);
- ``application/json``: ``{"images": ["<base64>", ...]}`` or, for features,
  ``{"items": [{"image": "<base64>", "boxes": [[x1, y1, x2, y2], ...]}, ...]}``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Annotated, TypeVar

import numpy as np
import orjson
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError

from poolserve.service.api import multipart
from poolserve.service.api.limits import RequestLimits
from poolserve.service.errors import InvalidField, InvalidRequest, LimitExceeded, UnsupportedMediaType
from poolserve.service.imaging.image_decoder import MEDIA_TYPES


@dataclass(frozen=True)
class ImagePayload:
    images: list[bytes]


@dataclass(frozen=True)
class RegionPayload:
    images: list[bytes]
    boxes: list[np.ndarray]  # per image (k_i, 4) float64: the coordinates as sent, in original pixels
    box_path: str  # where box j of image i is in the request, as str.format(image=i, box=j) names it


JSONBody = TypeVar("JSONBody", bound=BaseModel)
BoxListsT = TypeVar("BoxListsT", bound=Sequence[Sized])


# The request bodies each route accepts, as pydantic models: the JSON ones validate bodies here; all of
# them generate the routes' OpenAPI request bodies (poolserve.service.api.inference_endpoint).
Base64Image = Annotated[
    str, Field(json_schema_extra={"format": "byte"}, description="base64, or a data: URL")
]
# x1, y1, x2, y2 in the image's original pixels: JSON numbers only, as a string or a boolean that merely
# converts to one is more likely a client's bug than a coordinate.
Box = tuple[StrictFloat, StrictFloat, StrictFloat, StrictFloat]


class ClassifyJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[Base64Image]


class RegionItemJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: Base64Image
    boxes: list[Box]


class FeaturesJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[RegionItemJSON]


class ClassifyForm(BaseModel):
    """``multipart/form-data``: one file per image."""

    images: list[bytes]


class FeaturesForm(BaseModel):
    """``multipart/form-data``: one file per image, and their boxes as one JSON text field."""

    images: list[bytes]
    boxes: str = Field(description="JSON: one list of [x1, y1, x2, y2] boxes per image, in original pixels")


def _media_type(request: Request) -> str:
    """The body's media type; a body in a ``Content-Encoding`` is refused, since /v1 bodies are images
    (compressed already) or their containers, and reading one as plain bytes would only misreport it."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r}: /v1 takes bodies as they are, unencoded")
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _b64(text: str, where: str) -> bytes:
    if text.startswith("data:"):  # tolerate data URLs as browsers produce them
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where} is not valid base64") from None


def _json_model(body: bytes, model: type[JSONBody], limits: RequestLimits) -> JSONBody:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON") from None
    _check_counts(doc, limits)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()[:5])
        raise InvalidField(f"the JSON body does not match the expected shape ({where})") from None


def _check_counts(doc: object, limits: RequestLimits) -> None:
    """The image and box limits, on the parsed JSON before anything walks its items: validating and
    decoding 680,000 items only to refuse them by count held the event loop for seconds."""
    if not isinstance(doc, dict):
        return  # the schema check says what is wrong with it
    images = doc.get("images", doc.get("items"))
    if isinstance(images, list):
        _check_images_count(len(images), limits)
    items = doc.get("items")
    if isinstance(items, list):
        boxes = [i["boxes"] for i in items if isinstance(i, dict) and isinstance(i.get("boxes"), list)]
        check_boxes(boxes, limits.max_boxes)


MAX_FORM_FIELDS = 8  # parts beyond the images that are parsed before the form is refused for its fields


async def _multipart_images(
    request: Request, limits: RequestLimits, boxes_field: bool
) -> tuple[list[bytes], str | None]:
    """The ``images`` files and, where the route takes one (``boxes_field``), the ``boxes`` text field of
    a multipart form. Any other field, or a second ``boxes``, is refused: dropping what a client sent
    (a misspelt ``image``, a ``top_k`` meant for the query string) would answer a question it never asked."""
    accepted = ("images", "boxes") if boxes_field else ("images",)
    try:
        boundary = multipart.boundary_of(request.headers["content-type"])
        parts = multipart.parse_form(await request.body(), boundary, limits.max_images + MAX_FORM_FIELDS)
    except multipart.TooManyPartsError as exc:
        fields = " and one 'boxes' field" if boxes_field else ""
        raise LimitExceeded(
            f"more than {exc.limit} parts in the form; it takes at most {limits.max_images} images{fields}"
        ) from None
    except multipart.MultipartError as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from None
    unknown = sorted({p.name for p in parts} - set(accepted))
    if unknown:
        raise InvalidField(
            f"unknown form field {unknown[0]!r}; this route takes {' and '.join(map(repr, accepted))} "
            "(options such as top_k go in the query string)"
        )
    images = [p for p in parts if p.name == "images"]
    if any(p.filename is None for p in images):
        raise InvalidField("form field 'images' must hold files")
    boxes = [p for p in parts if p.name == "boxes"]
    if len(boxes) > 1:
        raise InvalidField(f"form field 'boxes' sent {len(boxes)} times; send it once, for all images")
    if boxes and boxes[0].filename is not None:
        raise InvalidField("form field 'boxes' must be text holding JSON")
    return [p.data for p in images], (boxes[0].data.decode("utf-8", "replace") if boxes else None)


def _check_images(images: list[bytes], limits: RequestLimits) -> list[bytes]:
    if not images:
        raise InvalidField("no images in the request: expected at least one")
    _check_images_count(len(images), limits)
    return images


def _check_images_count(count: int, limits: RequestLimits) -> None:
    if count > limits.max_images:
        raise LimitExceeded(f"{count} images; at most {limits.max_images} per request")


def _is_box(box: object) -> bool:
    """Four JSON numbers (``bool`` is an ``int`` to Python, not a number to a JSON client)."""
    return isinstance(box, list | tuple) and len(box) == 4 and all(type(v) in (int, float) for v in box)


def boxes_array(raw: object, where: str) -> np.ndarray:
    if not (isinstance(raw, list) and all(_is_box(b) for b in raw)):
        raise InvalidField(f"{where} must be a list of [x1, y1, x2, y2] boxes (4 numbers each)")
    # Four ints or floats each: always converts, and float64 holds any JSON number a client's float
    # does, so error messages and the response echo the coordinates as sent. Values (finite, ordered, in
    # the image) are checked once for every entry point, in the float32 frame the model sees:
    # poolserve.service.runtime.region_inputs.
    return np.asarray(raw, dtype=np.float64).reshape(-1, 4)


DEFAULT_TOP_K = 5


class TopKQuery(BaseModel):
    """The query of a route that ranks labels; the routes' own query models derive from it. Unknown
    parameters are refused, as unknown form fields are: a misspelt ``topk`` would otherwise be answered
    with the default, a question the client never asked."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(
        DEFAULT_TOP_K, ge=1, description=f"labels per result; {DEFAULT_TOP_K}, or max_top_k if lower"
    )


def check_top_k(query: TopKQuery, limits: RequestLimits) -> int:
    """The ``top_k`` a request asked for, refused past ``max_top_k``; one that did not ask gets the
    default, lowered to ``max_top_k`` where an operator set that lower (a default is not a request)."""
    k = query.top_k
    if "top_k" not in query.model_fields_set:
        return min(k, limits.max_top_k)
    if k > limits.max_top_k:
        raise LimitExceeded(f"top_k is {k}; at most {limits.max_top_k}")
    return k


def check_boxes(boxes: BoxListsT, max_boxes: int) -> BoxListsT:
    """``boxes``, one list (or array) of boxes per image, unless they hold more than ``max_boxes``."""
    total = sum(len(b) for b in boxes)
    if total > max_boxes:
        raise LimitExceeded(f"{total} boxes; at most {max_boxes} per request")
    return boxes


async def parse_classify(request: Request, limits: RequestLimits) -> ImagePayload:
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        images, _ = await _multipart_images(request, limits, boxes_field=False)
    elif media_type in MEDIA_TYPES:
        images = [await request.body()]
    elif media_type == "application/json":
        parsed = _json_model(await request.body(), ClassifyJSON, limits)
        images = [_b64(s, f"images[{i}]") for i, s in enumerate(parsed.images)]
    else:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media_type!r}; send multipart/form-data, application/json or "
            f"one of {', '.join(sorted(MEDIA_TYPES))}"
        )
    return ImagePayload(_check_images(images, limits))


async def parse_features(request: Request, limits: RequestLimits) -> RegionPayload:
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        images, boxes_text = await _multipart_images(request, limits, boxes_field=True)
        _check_images(images, limits)  # no images is that, not a mismatch with the boxes' count
        if boxes_text is None:
            raise InvalidField("form field 'boxes' is missing: JSON with one list of boxes per image")
        try:
            per_image = orjson.loads(boxes_text)
        except orjson.JSONDecodeError:
            raise InvalidRequest("form field 'boxes' is not valid JSON") from None
        if not isinstance(per_image, list) or len(per_image) != len(images):
            raise InvalidField(f"form field 'boxes' needs one list of boxes per image ({len(images)})")
        check_boxes([b for b in per_image if isinstance(b, list)], limits.max_boxes)  # before walking them
        boxes = [boxes_array(b, f"boxes[{i}]") for i, b in enumerate(per_image)]
        box_path = "boxes[{image}][{box}]"
    elif media_type == "application/json":
        parsed = _json_model(await request.body(), FeaturesJSON, limits)  # counts images and boxes
        images = _check_images(
            [_b64(item.image, f"items[{i}].image") for i, item in enumerate(parsed.items)], limits
        )
        boxes = [boxes_array(item.boxes, f"items[{i}].boxes") for i, item in enumerate(parsed.items)]
        box_path = "items[{image}].boxes[{box}]"
    else:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media_type!r}; send multipart/form-data or application/json"
        )
    return RegionPayload(images, boxes, box_path)
