"""One batch of items to model input: read, decode and preprocess with the service's own code, boxes
checked by ``check_image_boxes``. An input that fails becomes an ``ItemError``; the batch goes on."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poolserve.extract.boxes import check_image_boxes
from poolserve.extract.dataset import Item
from poolserve.repository.manifest import Preprocessing
from poolserve.service.api.error_table import slug
from poolserve.service.errors import ServiceError
from poolserve.service.imaging.preprocess import decode_and_preprocess, map_boxes


@dataclass(frozen=True)
class ItemError:
    """A line of ``errors.jsonl``: which input, a stable reason slug and the human explanation."""

    image: str
    reason: str  # "missing", "unreadable", "file-too-large" or the service's problem slug
    detail: str


@dataclass(frozen=True)
class InputLimits:
    max_file_bytes: int
    max_pixels: int
    max_boxes: int
    # large JPEGs decoded at reduced scale, as the service's POOLSERVE_REDUCED_JPEG_DECODE does, so that
    # every engine's rows equal what /v1 returns for the same file
    reduced_jpeg: bool = True


def image_detail(detail: str) -> str:
    """A service message about a request's only image, as a dataset's error row says it: the row names
    the image already, and ``images[0]`` means nothing in a dataset."""
    return detail.removeprefix("images[0]: ")


class InputError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def read_image_file(item: Item, max_file_bytes: int) -> bytes:
    """The file's bytes, refusing what the endpoint would refuse by size before reading it whole."""
    path = Path(item.path)
    try:
        status = path.stat()
        # Only a regular file's size is its length: a device reads without end, a FIFO blocks the job.
        if not stat.S_ISREG(status.st_mode):
            raise InputError("unreadable", "not a regular file (a device, FIFO or socket); name image files")
        if status.st_size > max_file_bytes:
            raise InputError(
                "file-too-large", f"the file is {status.st_size} bytes; at most {max_file_bytes}"
            )
        with path.open("rb") as handle:
            blob = handle.read(max_file_bytes + 1)  # it may have grown since
    except FileNotFoundError:
        detail = "a symbolic link to a file that does not exist" if path.is_symlink() else "no such file"
        raise InputError("missing", detail) from None
    except OSError as exc:
        raise InputError("unreadable", exc.strerror or type(exc).__name__) from None
    if len(blob) > max_file_bytes:
        raise InputError("file-too-large", f"the file is over {max_file_bytes} bytes")
    return blob


@dataclass(frozen=True)
class PreparedImage:
    item: Item
    size: tuple[int, int]  # (width, height) after EXIF orientation: what boxes refer to
    tensor: np.ndarray  # (1, C, H, W) float32
    boxes: np.ndarray | None  # (k, 4) float32, original pixels, checked; None for classifiers
    mapped: np.ndarray | None  # the same boxes in the model input frame


@dataclass(frozen=True)
class PreparedBatch:
    images: list[PreparedImage]  # the usable ones, in item order
    errors: list[ItemError]

    def tensor(self) -> np.ndarray:
        return np.concatenate([p.tensor for p in self.images])


def prepare_image(item: Item, spec: Preprocessing, limits: InputLimits) -> PreparedImage:
    blob = read_image_file(item, limits.max_file_bytes)
    try:
        tensor, (transform,) = decode_and_preprocess(
            [blob], spec, limits.max_pixels, reduced_jpeg=limits.reduced_jpeg
        )
        if item.boxes is None:
            return PreparedImage(item, transform.original_size, tensor, None, None)
        boxes = check_image_boxes(item.boxes, transform.original_size, limits.max_boxes)
    except ServiceError as exc:
        raise InputError(slug(type(exc)), image_detail(exc.detail)) from None
    return PreparedImage(item, transform.original_size, tensor, boxes, map_boxes(boxes, transform))


def prepare_batch(items: Sequence[Item], spec: Preprocessing, limits: InputLimits) -> PreparedBatch:
    images, errors = [], []
    for item in items:
        try:
            images.append(prepare_image(item, spec, limits))
        except InputError as exc:
            errors.append(ItemError(item.key, exc.reason, exc.detail))
    return PreparedBatch(images, errors)
