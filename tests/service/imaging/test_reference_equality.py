"""The lean decode and preprocess path against the straightforward one it replaced: bit-identical.

``reference_decode`` and ``reference_preprocess`` are the earlier implementations, kept verbatim in
spirit: probe every format, copy on EXIF transpose, convert and resize unconditionally, normalize in
(H, W, C) float32, then pad with ``np.full`` and stack. Every output value must match exactly.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

from poolserve.repository.manifest import Preprocessing
from poolserve.service.errors import ServiceError
from poolserve.service.imaging.image_decoder import ALLOWED_FORMATS, decode_image
from poolserve.service.imaging.preprocess import (
    _RESAMPLE,
    _eight_bit,
    decode_and_preprocess,
    preprocess,
    resized_size,
)


def reference_decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format in ALLOWED_FORMATS
    image.load()
    transposed = ImageOps.exif_transpose(image)
    assert transposed is not None
    return transposed


def reference_preprocess(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    rgb_or_gray = _eight_bit(image).convert("L" if spec.color_mode == "L" else "RGB")
    new_w, new_h = resized_size(rgb_or_gray.size, spec)
    resized = rgb_or_gray.resize((new_w, new_h), _RESAMPLE[spec.interpolation])
    pixels = np.asarray(resized, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec.color_mode == "BGR":
        pixels = pixels[:, :, ::-1]
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    normalized = (pixels * np.float32(spec.scale) - mean) / std
    tensor = np.full((spec.channels, spec.height, spec.width), spec.pad_value, np.float32)
    tensor[:, :, :new_w] = normalized.transpose(2, 0, 1)
    return tensor


def encoded(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def photo(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """Smooth gradient plus noise: every pixel value and rounding case shows up, unlike a flat fill."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([x, y, 1 - (x + y) / 2], axis=-1) * 200 + rng.integers(0, 56, (height, width, 3))
    return Image.fromarray(base.astype(np.uint8)).convert(mode)


def uploads() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []
    for (mode, fmt), size in itertools.product(
        [
            ("L", "PNG"),
            ("RGB", "PNG"),
            ("RGBA", "PNG"),
            ("P", "PNG"),
            ("1", "BMP"),
            ("LA", "PNG"),
            ("RGB", "JPEG"),
            ("L", "JPEG"),
            ("CMYK", "JPEG"),
            ("RGB", "WEBP"),
            ("RGB", "BMP"),
        ],
        [(28, 28), (48, 48), (37, 19), (64, 96)],
    ):
        cases.append((f"{mode}-{fmt}-{size[0]}x{size[1]}", encoded(photo(mode, size, len(cases)), fmt)))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = encoded(photo("RGB", (37, 19), orientation), "JPEG", exif=exif)
        cases.append((f"exif-{orientation}", data))
    sixteen = (np.arange(30 * 20, dtype=np.uint32).reshape(20, 30) * 97 % 65536).astype(np.uint16)
    cases.append(("I;16-PNG", encoded(Image.fromarray(sixteen), "PNG")))
    return cases


UPLOADS = uploads()
SPECS = [
    Preprocessing(color_mode="L", height=28, width=28, scale=1 / 255, mean=[0.1307], std=[0.3081]),
    Preprocessing(color_mode="RGB", height=48, width=48, scale=1.0, mean=[127.5] * 3, std=[128.0] * 3),
    Preprocessing(
        color_mode="RGB",
        height=37,
        width=19,
        interpolation="bicubic",
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
    ),
    Preprocessing(
        color_mode="BGR",
        height=48,
        width=192,
        resize="fit-height-pad-width",
        mean=[0.5] * 3,
        std=[0.5] * 3,
        pad_value=-1.5,
    ),
    Preprocessing(
        color_mode="L",
        height=19,
        width=64,
        interpolation="nearest",
        resize="fit-height-pad-width",
        mean=[0.2],
        std=[0.7],
        pad_value=3.0,
    ),
]


@pytest.mark.parametrize(("name", "data"), UPLOADS, ids=[name for name, _ in UPLOADS])
def test_decode_matches_the_reference(name: str, data: bytes) -> None:
    image, reference = decode_image(data, max_pixels=1 << 20), reference_decode(data)
    assert (image.size, image.mode) == (reference.size, reference.mode)
    assert image.tobytes() == reference.tobytes()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.color_mode}-{s.height}x{s.width}-{s.resize}")
def test_preprocess_is_bit_identical_to_the_reference(spec: Preprocessing) -> None:
    for name, data in UPLOADS:
        tensor, _ = preprocess(decode_image(data, max_pixels=1 << 20), spec)
        expected = reference_preprocess(reference_decode(data), spec)
        assert tensor.dtype == np.float32 and tensor.shape == expected.shape, name
        assert tensor.tobytes() == expected.tobytes(), name  # bitwise, not merely np.allclose


@pytest.mark.parametrize("spec", SPECS[:2], ids=["L", "RGB"])
def test_batch_equals_stacked_reference(spec: Preprocessing) -> None:
    blobs = [data for _, data in UPLOADS]
    batch, _ = decode_and_preprocess(blobs, spec, max_pixels=1 << 20)
    expected = np.stack([reference_preprocess(reference_decode(b), spec) for b in blobs])
    assert batch.shape == expected.shape and batch.tobytes() == expected.tobytes()


@pytest.mark.parametrize("interpolation", sorted(_RESAMPLE))
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_resize_to_the_same_size_is_a_copy(mode: str, interpolation: str) -> None:
    # preprocess skips this resize; that is only sound while Pillow returns the pixels unchanged.
    image = photo(mode, (23, 17), 0)
    same = image.resize(image.size, _RESAMPLE[interpolation])
    assert same.tobytes() == image.tobytes()


@pytest.mark.parametrize(
    "data",
    [
        b"hello",
        encoded(Image.new("L", (8, 8)), "PNG")[:40],
        encoded(photo("RGB", (16, 16), 0), "JPEG")[:200],
        encoded(Image.new("L", (8, 8)), "GIF"),
        encoded(Image.new("L", (8, 8)), "TIFF"),
        encoded(Image.new("L", (8, 8)), "PNG", save_all=True, append_images=[Image.new("L", (8, 8), 9)]),
    ],
    ids=["text", "truncated-png", "truncated-jpeg", "gif", "tiff", "animated-png"],
)
def test_refusals_keep_their_messages(data: bytes) -> None:
    with pytest.raises(ServiceError) as refused:
        decode_image(data, max_pixels=10_000)
    expected = reference_refusal(data)
    assert (type(refused.value), refused.value.detail) == expected


def reference_refusal(data: bytes) -> tuple[type[ServiceError], str]:
    from poolserve.service.errors import InvalidImage

    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ALLOWED_FORMATS:
            return InvalidImage, f"unsupported image format {image.format}; use JPEG, PNG, WebP or BMP"
        frames = int(getattr(image, "n_frames", 1))
        if frames > 1:
            return InvalidImage, f"animated image ({frames} frames); send a single still image"
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return InvalidImage, "the data is not a readable image"
    raise AssertionError("the reference accepted the data")
