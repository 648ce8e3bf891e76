from __future__ import annotations

import io

import pytest
from PIL import Image

from poolserve.service.errors import ImageTooLarge, InvalidImage
from poolserve.service.imaging.image_decoder import decode_image


def encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_supported_formats_decode(fmt: str) -> None:
    image = decode_image(encoded(Image.new("RGB", (7, 5), (10, 20, 30)), fmt), max_pixels=100)
    assert image.size == (7, 5)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image = decode_image(encoded(Image.new("L", (40, 10)), "JPEG", exif=exif), max_pixels=10_000)
    assert image.size == (10, 40)


def test_pixel_limit_is_checked_from_the_header() -> None:
    bomb = encoded(Image.new("L", (3000, 3000)), "PNG")  # a few kB on the wire, 9 Mpx decoded
    assert len(bomb) < 50_000
    with pytest.raises(ImageTooLarge):
        decode_image(bomb, max_pixels=1_000_000)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", encoded(Image.new("L", (8, 8)), "PNG")[:40], encoded(Image.new("L", (8, 8)), "GIF")],
    ids=["empty", "text", "truncated-png", "gif"],
)
def test_undecodable_or_unsupported_data_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        decode_image(data, max_pixels=10_000)
