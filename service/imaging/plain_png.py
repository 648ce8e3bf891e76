"""The common PNG, decoded without Pillow's per-file machinery.

Most PNGs a classifier is sent are the plainest kind: 8-bit gray, RGB, gray + alpha or RGBA, not
interlaced, holding nothing but their header, pixel data and end. On a small image, opening one through
``Image.open`` costs more than decoding its pixels (format probing, chunk parsing in Python, the EXIF
lookup for orientation); ``python -m bench.preprocess_cost`` measures the difference. For exactly these files,
``open_plain_png`` reads the chunks itself and ``PlainPNG.load`` hands the pixel data to Pillow's own PNG
decoder (``Image.frombytes(..., "zip", ...)``, the decoder ``PngImagePlugin`` uses), so the pixels are
Pillow's, unfiltered by the same C code. A file with any other chunk (palette, transparency, text that
may carry an orientation, EXIF, animation, ...) or anything unusual returns None and takes the general
path, which decides about it as before.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from PIL import Image

from poolserve.service.errors import ImageTooLarge, InvalidImage

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (bit depth, color type) -> Pillow mode, which is also the decoder's raw mode at 8 bits.
_MODES = {(8, 0): "L", (8, 2): "RGB", (8, 4): "LA", (8, 6): "RGBA"}
_CHUNK = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")


@dataclass(frozen=True)
class PlainPNG:
    """A plain PNG's header and its compressed pixel data (every IDAT chunk's payload, in order)."""

    size: tuple[int, int]  # (width, height)
    mode: str
    compressed: bytes
    format = "PNG"

    def load(self) -> Image.Image:
        """The pixels as Pillow decodes them; truncated or corrupt data is ``InvalidImage``."""
        try:
            return Image.frombytes(self.mode, self.size, self.compressed, "zip", self.mode)
        except (ValueError, OSError):
            raise InvalidImage("the data is not a readable image") from None


def open_plain_png(data: bytes, max_pixels: int) -> PlainPNG | None:
    """Read a plain PNG's chunks, refusing one over ``max_pixels``; None for anything else."""
    if not data.startswith(SIGNATURE):
        return None
    header = _chunks(data)
    if header is None:
        return None
    ihdr, idat = header
    width, height, depth, color, compression, filtering, interlace = _IHDR.unpack(ihdr)
    mode = _MODES.get((depth, color))
    if mode is None or compression or filtering or interlace or not width or not height:
        return None
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
    return PlainPNG((width, height), mode, idat)


def _chunks(data: bytes) -> tuple[bytes, bytes] | None:
    """(IHDR payload, joined IDAT payloads) when the file is exactly IHDR, IDAT..., IEND, with an intact
    header checksum (Pillow checks the chunks before the pixel data; it skips the IDAT checksums)."""
    pos, end = len(SIGNATURE), len(data)
    idat: list[bytes] = []
    ihdr = b""
    while pos + 12 <= end:
        length, kind = _CHUNK.unpack_from(data, pos)
        start, stop = pos + 8, pos + 8 + length
        if stop + 4 > end:
            return None
        if not ihdr:
            if kind != b"IHDR" or length != 13:
                return None
            ihdr = data[start:stop]
            if zlib.crc32(data[pos + 4 : stop]) != int.from_bytes(data[stop : stop + 4], "big"):
                return None
        elif kind == b"IDAT":
            idat.append(data[start:stop])
        elif kind == b"IEND" and idat:
            return ihdr, b"".join(idat)
        else:
            return None
        pos = stop + 4
    return None
