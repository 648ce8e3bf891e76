"""Pillow image to model input, exactly as the manifest's ``Preprocessing`` says, and boxes mapped alike.

decode -> color mode -> resize -> ``pixel * scale`` -> ``(x - mean) / std`` -> (C, H, W) float32.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from poolserve.repository.manifest import Preprocessing
from poolserve.service.errors import ImageTooLarge, LimitExceeded, ServiceError
from poolserve.service.imaging.image_decoder import load_image, open_image, oriented_size

T = TypeVar("T")

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class ResizeTransform:
    """How original pixel coordinates map into the model input frame: ``x' = x * scale_x``.

    Pillow's resize maps pixel edges onto pixel edges (0 -> 0, width -> new width), so box corners, being
    continuous edge coordinates, scale by the same per-axis factor.
    """

    scale_x: float
    scale_y: float
    # (width, height) after EXIF orientation: what box coordinates refer to. Not part of equality: two
    # transforms that map boxes the same way are the same transform.
    original_size: tuple[int, int] = field(default=(0, 0), compare=False)


def resized_size(original: tuple[int, int], spec: Preprocessing) -> tuple[int, int]:
    """The (width, height) the image is resized to before any padding."""
    width, height = original
    if spec.resize == "stretch":
        return spec.width, spec.height
    # fit-height-pad-width: keep the aspect ratio at spec.height rows; too-wide images are squeezed to fit.
    # Rounded up, in PaddleOCR's order of operations (resize_norm_img: ceil(img_h * (w / h))), so its
    # text-line models see the widths they were trained with.
    scaled = max(1, math.ceil(spec.height * (width / height)))
    return min(scaled, spec.width), spec.height


def _eight_bit(image: Image.Image) -> Image.Image:
    """16/32-bit integer grayscale to 8 bits by scale; Pillow's own ``convert("L")`` would clip at 255."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L"):
        return image
    pixels = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8))


@functools.lru_cache(maxsize=64)
def normalization_table(scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(C, 256) float32: ``(pixel * scale - mean) / std`` for every 8-bit value of every channel.

    Computed with the same float32 operations, in the same order, as normalizing the pixels themselves
    (uint8 to float32 is exact), so a lookup gives identical bits for about half the work of the three
    passes of arithmetic. Cached: a pure function of a model's few preprocessing constants.
    """
    table = np.empty((len(mean), 256), np.float32)
    np.multiply(np.arange(256, dtype=np.uint8)[None, :], np.float32(scale), out=table)
    np.subtract(table, np.asarray(mean, np.float32)[:, None], out=table)
    np.divide(table, np.asarray(std, np.float32)[:, None], out=table)
    table.flags.writeable = False
    return table


def _pixels(image: Image.Image) -> np.ndarray:
    """An 8-bit L or RGB image's pixels as (H, W, C) uint8, read-only; ``tobytes`` costs less than
    ``np.asarray`` on small images (its array interface does more than copy the bytes)."""
    width, height = image.size
    return np.frombuffer(image.tobytes(), np.uint8).reshape(height, width, len(image.getbands()))


def preprocess(image: Image.Image, spec: Preprocessing) -> tuple[np.ndarray, ResizeTransform]:
    """One decoded image to a (C, H, W) float32 tensor, plus the transform its boxes need."""
    tensor = np.empty((spec.channels, spec.height, spec.width), np.float32)
    return tensor, preprocess_into(image, spec, tensor)


def preprocess_into(
    image: Image.Image,
    spec: Preprocessing,
    out: np.ndarray,
    original_size: tuple[int, int] | None = None,
) -> ResizeTransform:
    """``preprocess`` written into ``out``, a (C, H, W) float32 slot such as one image of a batch.

    ``original_size``: the image's size as sent, when ``image`` was decoded at a reduced scale; the resize
    target and the box transform come from it, so a reduced decode changes pixels only, never geometry.
    Pillow's ``convert`` to the image's own mode and ``resize`` to its own size both return plain copies,
    so they are skipped. Normalization is a lookup in ``normalization_table``, which holds the float32
    arithmetic's own results, so the values are bit-identical; it is written straight into the output.
    """
    eight_bit = _eight_bit(image)
    mode = "L" if spec.color_mode == "L" else "RGB"
    rgb_or_gray = eight_bit if eight_bit.mode == mode else eight_bit.convert(mode)
    width, height = original_size or image.size
    new_w, new_h = resized_size((width, height), spec)
    if rgb_or_gray.size != (new_w, new_h):
        rgb_or_gray = rgb_or_gray.resize((new_w, new_h), _RESAMPLE[spec.interpolation])
    pixels = _pixels(rgb_or_gray)  # (H, W, C) uint8
    if spec.color_mode == "BGR":
        pixels = pixels[:, :, ::-1]
    table = normalization_table(spec.scale, tuple(spec.mean), tuple(spec.std))
    target = out[:, :, :new_w]
    for channel, values in enumerate(table):
        np.take(values, pixels[:, :, channel], out=target[channel], mode="clip")  # uint8: never clipped
    if new_w < spec.width:
        out[:, :, new_w:] = spec.pad_value
    return ResizeTransform(new_w / width, new_h / height, (width, height))


def map_boxes(boxes: np.ndarray, transform: ResizeTransform) -> np.ndarray:
    """(k, 4) x1 y1 x2 y2 in original pixels to the model input frame, float32."""
    factors = np.asarray(
        [transform.scale_x, transform.scale_y, transform.scale_x, transform.scale_y], np.float64
    )
    with np.errstate(over="ignore"):  # past float32's range is +-inf, refused later as not finite
        return (boxes.astype(np.float64) * factors).astype(np.float32)


def decode_and_preprocess(
    blobs: list[bytes],
    spec: Preprocessing,
    max_pixels: int,
    max_request_pixels: int | None = None,
    reduced_jpeg: bool = False,
    max_request_input_pixels: int | None = None,
) -> tuple[np.ndarray, list[ResizeTransform]]:
    """Encoded images to one (n, C, H, W) batch; errors name the offending image's position.

    Every header is read first, so a request over ``max_request_pixels`` in all is refused before any
    pixel is decoded; one whose images would fill more than ``max_request_input_pixels`` of model input
    (what inference costs) before even that. ``reduced_jpeg``: JPEGs several times larger than the
    model's input are decoded at 1/2, 1/4 or 1/8 scale (``load_image``). Each image is written straight
    into its slot of the batch.
    """
    per_image = spec.height * spec.width
    if max_request_input_pixels is not None and len(blobs) * per_image > max_request_input_pixels:
        raise LimitExceeded(
            f"{len(blobs)} images; this model's {spec.width}x{spec.height} input takes at most "
            f"{max_request_input_pixels // per_image} per request (max_request_input_pixels)"
        )
    opened = [_at(i, open_image, blob, max_pixels) for i, blob in enumerate(blobs)]
    total = sum(image.size[0] * image.size[1] for image in opened)
    if max_request_pixels is not None and total > max_request_pixels:
        raise ImageTooLarge(
            f"the request's {len(blobs)} images total {total} pixels; the limit per request is "
            f"{max_request_pixels} pixels (max_request_pixels): send fewer or smaller images per request"
        )
    batch = np.empty((len(blobs), spec.channels, spec.height, spec.width), np.float32)
    transforms = []
    for i, image in enumerate(opened):
        original = oriented_size(image) if reduced_jpeg and image.format == "JPEG" else None
        at_least = resized_size(original, spec) if original is not None else None
        loaded = _at(i, load_image, image, at_least)
        transforms.append(_at(i, preprocess_into, loaded, spec, batch[i], original))
    return batch, transforms


def _at(index: int, step: Callable[..., T], *args: Any) -> T:
    """Run one image's step; a client error names the image's position in the request."""
    try:
        return step(*args)
    except ServiceError as exc:
        raise type(exc)(f"images[{index}]: {exc.detail}") from None
