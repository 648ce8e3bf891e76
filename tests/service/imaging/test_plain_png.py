"""The plain-PNG path against Pillow's own: the same pixels, the same refusals, and only plain files taken.

``pillow_decode`` is the general path (``Image.open``, EXIF orientation); every file here goes through both.
Hand-built files cover every PNG row filter, which Pillow's encoder picks by itself.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from poolserve.service.errors import ImageTooLarge, InvalidImage, ServiceError
from poolserve.service.imaging.image_decoder import decode_image, load_image, open_pillow_image
from poolserve.service.imaging.plain_png import SIGNATURE, PlainPNG, open_plain_png

MAX_PIXELS = 1 << 24


def pillow_decode(data: bytes) -> Image.Image:
    return load_image(open_pillow_image(data, MAX_PIXELS))


def pillow_outcome(data: bytes, max_pixels: int) -> Image.Image:
    return pillow_decode(data)


def outcome(decode: Callable[[bytes, int], Image.Image], data: bytes) -> tuple[str, str, bytes]:
    """What a decoder makes of ``data``: its mode and pixels, or the error it refuses it with."""
    try:
        image = decode(data, MAX_PIXELS)
    except ServiceError as exc:
        return type(exc).__name__, exc.detail, b""
    return image.mode, "", np.asarray(image).tobytes()


def encoded(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def hand_built(pixels: np.ndarray, color_type: int, filters: list[int]) -> bytes:
    """An 8-bit PNG whose row ``y`` uses filter ``filters[y]`` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1).astype(np.int32)
    step = pixels.shape[2] if pixels.ndim == 3 else 1
    raw = bytearray()
    for y, kind in enumerate(filters):
        row, above = rows[y], rows[y - 1] if y else np.zeros_like(rows[0])
        left = np.concatenate([np.zeros(step, np.int32), row[:-step]])
        upper_left = np.concatenate([np.zeros(step, np.int32), above[:-step]])
        if kind == 4:
            p = left + above - upper_left
            pa, pb, pc = np.abs(p - left), np.abs(p - above), np.abs(p - upper_left)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upper_left))
        else:
            predictor = [0 * row, left, above, (left + above) // 2][kind]
        raw += bytes([kind]) + ((row - predictor) % 256).astype(np.uint8).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(bytes(raw))
    # Two IDAT chunks, as encoders split long data.
    idats = chunk(b"IDAT", idat[:7]) + chunk(b"IDAT", idat[7:])
    return SIGNATURE + chunk(b"IHDR", header) + idats + chunk(b"IEND", b"")


def noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


PLAIN = {
    "L": encoded(Image.fromarray(noise((23, 31), 0), "L")),
    "RGB": encoded(Image.fromarray(noise((17, 9, 3), 1), "RGB")),
    "LA": encoded(Image.fromarray(noise((5, 40, 2), 2), "LA")),
    "RGBA": encoded(Image.fromarray(noise((12, 12, 4), 3), "RGBA")),
    "RGB, optimized": encoded(Image.fromarray(noise((30, 20, 3), 4), "RGB"), optimize=True),
    "L, stored": encoded(Image.fromarray(noise((1, 1), 5), "L"), compress_level=0),
    "L, one row": encoded(Image.fromarray(noise((1, 300), 6), "L")),
    "digit": encoded(Image.fromarray((noise((28, 28), 7) > 200).astype(np.uint8) * 255, "L")),
}
for kind in range(5):
    PLAIN[f"RGB, filter {kind}"] = hand_built(noise((9, 7, 3), 10 + kind), 2, [kind] * 9)
PLAIN["L, every filter"] = hand_built(noise((10, 13), 20), 0, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
PLAIN["RGBA, every filter"] = hand_built(noise((5, 6, 4), 21), 6, [4, 3, 2, 1, 0])


def with_text(image: Image.Image) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "hello")
    return encoded(image, pnginfo=info)


def with_exif_orientation(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: the general path must apply it
    return encoded(image, exif=exif)


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


GRAY = Image.fromarray(noise((6, 11), 30), "L")
NOT_PLAIN = {
    "palette": encoded(GRAY.convert("P")),
    "1-bit": encoded(GRAY.convert("1")),
    "16-bit": encoded(Image.fromarray(noise((4, 4), 31).astype(np.uint16) * 257)),
    "transparency": encoded(GRAY, transparency=7),
    "text chunk": with_text(GRAY),
    "EXIF orientation": with_exif_orientation(GRAY),
    "physical size": encoded(GRAY, dpi=(72, 72)),
    "animated": encoded(GRAY, save_all=True, append_images=[GRAY.transpose(Image.Transpose.ROTATE_180)]),
    "JPEG": jpeg(GRAY),
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_files_take_the_plain_path_and_decode_to_pillows_pixels(name: str) -> None:
    data = PLAIN[name]
    plain = open_plain_png(data, MAX_PIXELS)
    assert isinstance(plain, PlainPNG)
    expected = pillow_decode(data)
    got = plain.load()
    assert (got.mode, got.size) == (expected.mode, expected.size) == (plain.mode, plain.size)
    assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_hand_built_files_hold_what_was_encoded() -> None:
    """The filters in ``hand_built`` are right (else the comparison above proves little): Pillow reads back
    the very pixels."""
    pixels = noise((10, 13), 20)
    data = hand_built(pixels, 0, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    assert np.array_equal(np.asarray(pillow_decode(data)), pixels)


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_anything_else_takes_the_general_path(name: str) -> None:
    data = NOT_PLAIN[name]
    assert open_plain_png(data, MAX_PIXELS) is None
    assert outcome(decode_image, data) == outcome(pillow_outcome, data)  # the general path decides


def test_the_general_path_applies_what_made_a_file_not_plain() -> None:
    turned = decode_image(NOT_PLAIN["EXIF orientation"], MAX_PIXELS)
    assert turned.size == GRAY.size[::-1]


def test_an_image_over_the_pixel_limit_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLarge, match=r"image is 31x23 pixels; the limit is 700 pixels"):
        open_plain_png(PLAIN["L"], 700)
    assert open_plain_png(PLAIN["L"], 713) is not None


@pytest.mark.parametrize("name", ["RGB, filter 4", "L", "RGBA, every filter"])
def test_damaged_files_get_pillows_answer(name: str) -> None:
    """Every truncation and a few hundred single-byte changes: the served decoder answers as Pillow's
    general path does, the same pixels or the same refusal."""
    data = PLAIN[name]
    rng = random.Random(name)
    damaged = [data[:n] for n in range(len(data))]
    for _ in range(300):
        position = rng.randrange(len(SIGNATURE), len(data))
        damaged.append(data[:position] + bytes([rng.randrange(256)]) + data[position + 1 :])
    for data in damaged:
        assert outcome(decode_image, data) == outcome(pillow_outcome, data)


def test_damaged_pixel_data_is_an_invalid_image() -> None:
    data = PLAIN["L, every filter"]
    plain = open_plain_png(data, MAX_PIXELS)
    assert plain is not None
    broken = PlainPNG(plain.size, plain.mode, plain.compressed[: len(plain.compressed) // 2])
    with pytest.raises(InvalidImage, match="not a readable image"):
        broken.load()
