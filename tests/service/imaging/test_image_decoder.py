from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from poolserve.service.errors import ImageTooLarge, InvalidImage
from poolserve.service.imaging.image_decoder import decode_image, load_image, open_image, oriented_size


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


def tiff_exif(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """An EXIF block (little-endian TIFF) with one IFD of ``(tag, type, count, value bytes)`` entries,
    written by hand: Pillow's writer refuses the malformed tags these tests need."""
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd, extra = struct.pack("<H", len(entries)), b""
    data_at = 8 + 2 + 12 * len(entries) + 4
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            ifd += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHI", tag, kind, count) + struct.pack("<I", data_at + len(extra))
            extra += value
    return header + ifd + b"\x00\x00\x00\x00" + extra


SHORT, BYTE, ASCII, RATIONAL = 3, 1, 2, 5
ORIENT_6 = (0x0112, SHORT, 1, struct.pack("<H", 6))

# EXIF blocks whose orientation tag is not exactly an integer, or that are malformed around a valid one:
# (block, the orientation the image must be displayed with)
ODD_EXIF = {
    "orientation-as-byte": (tiff_exif([(0x0112, BYTE, 1, b"\x06")]), 1),
    "orientation-as-text": (tiff_exif([(0x0112, ASCII, 2, b"6\x00")]), 1),
    "orientation-rational-6/0": (tiff_exif([(0x0112, RATIONAL, 1, struct.pack("<II", 6, 0))]), 1),
    "orientation-rational-13/2": (tiff_exif([(0x0112, RATIONAL, 1, struct.pack("<II", 13, 2))]), 1),
    "orientation-9": (tiff_exif([(0x0112, SHORT, 1, struct.pack("<H", 9))]), 1),
    "make-as-rational": (tiff_exif([(0x010F, RATIONAL, 1, struct.pack("<II", 1, 2)), ORIENT_6]), 6),
    "resolution-as-text": (tiff_exif([(0x011A, ASCII, 4, b"72a\x00"), ORIENT_6]), 6),
    "tiff-header-only": (b"II*\x00", 1),
    "not-tiff": (b"hello world", 1),
}


def asymmetric(size: tuple[int, int]) -> Image.Image:
    """Every pixel different, so any flip or turn shows in the pixels."""
    width, height = size
    return Image.fromarray((np.arange(width * height) % 251).astype(np.uint8).reshape(height, width))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_the_pixels_as_pillow_does(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(asymmetric((6, 4)), "PNG", exif=exif)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    image = open_image(data, max_pixels=100)
    assert oriented_size(image) == expected.size
    assert np.array_equal(np.asarray(load_image(image)), np.asarray(expected))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("case", ODD_EXIF)
def test_odd_or_malformed_exif_never_refuses_the_pixels_and_geometry_agrees(fmt: str, case: str) -> None:
    block, orientation = ODD_EXIF[case]
    if fmt == "JPEG":
        block = b"Exif\x00\x00" + block
    plain = asymmetric((6, 4))
    data = encoded(plain, fmt, exif=block, **({"lossless": True} if fmt == "WEBP" else {}))
    image = open_image(data, max_pixels=100)
    size = oriented_size(image)  # what boxes are mapped by: must be the size of the pixels decoded
    loaded = load_image(image)
    assert loaded.size == size == ((4, 6) if orientation == 6 else (6, 4))
    if fmt != "JPEG":  # lossless: the pixels themselves, turned or not
        upright = plain.transpose(Image.Transpose.ROTATE_270) if orientation == 6 else plain
        assert np.array_equal(np.asarray(loaded.convert("L")), np.asarray(upright))  # WebP stores RGB
