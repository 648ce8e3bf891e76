"""Bytes to a Pillow image: format allow-list, pixel limit checked from the header, EXIF orientation.

Two steps, so that a request's whole cost is known before any of its images is decoded: ``open_image``
reads only the header (format, size, frame count) and refuses what is over the limits; ``load_image``
decodes the pixels, at a reduced scale when the caller needs far fewer (JPEG only, ``Image.draft``). A plain
PNG opens as a ``PlainPNG`` (``plain_png.py``: no ``Image.open``, no orientation to apply); every other
image through Pillow (``open_pillow_image``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from poolserve.service.errors import ImageTooLarge, InvalidImage
from poolserve.service.imaging.plain_png import PlainPNG, open_plain_png

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})
_PROBE = tuple(sorted(ALLOWED_FORMATS))
MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/bmp"})
_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that displays the image upright (Pillow's ``ImageOps.exif_transpose``).
_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image a quarter

OpenedImage = PlainPNG | Image.Image


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode one image at full scale, refusing bombs before any pixel is allocated."""
    return load_image(open_image(data, max_pixels))


def open_image(data: bytes, max_pixels: int) -> OpenedImage:
    """Read the header only and refuse what the service does not take: a plain PNG's own, else Pillow's."""
    return open_plain_png(data, max_pixels) or open_pillow_image(data, max_pixels)


def open_pillow_image(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only, through Pillow, and refuse what the service does not take.

    ``Image.open`` reads only the header, so ``img.size`` is known before ``load()`` allocates. Pillow's own
    bomb guard (``Image.MAX_IMAGE_PIXELS``) is process-global, so we leave it alone and check our limit here;
    its error and warning, should an image exceed Pillow's far larger default, are refused the same way.
    """
    if not data:
        raise InvalidImage("empty image")
    with _as_client_errors(max_pixels):
        image = _open(data)
        if image.format not in ALLOWED_FORMATS:
            raise InvalidImage(f"unsupported image format {image.format}; use JPEG, PNG, WebP or BMP")
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
        # Animated PNG/WebP: refused rather than silently reduced to a first frame the client never chose.
        # The frame count comes from the header for these formats; no frame is decoded to learn it.
        frames = int(getattr(image, "n_frames", 1))
        if frames > 1:
            raise InvalidImage(f"animated image ({frames} frames); send a single still image")
        return image


def oriented_size(image: OpenedImage) -> tuple[int, int]:
    """(width, height) as displayed, after EXIF orientation: what box coordinates refer to."""
    width, height = image.size
    if isinstance(image, PlainPNG):
        return width, height
    return (height, width) if _orientation(image) in _SWAPS_AXES else (width, height)


def load_image(image: OpenedImage, at_least: tuple[int, int] | None = None) -> Image.Image:
    """Decode an opened image, EXIF orientation applied.

    ``at_least`` (width, height, as displayed): a JPEG that large several times over is decoded at 1/2,
    1/4 or 1/8 scale by libjpeg itself (``Image.draft``), never below that size: most of the decoding
    work is skipped, and a resize to the model's input follows anyway (docs/limits.md measures the effect
    on accuracy). Other formats have no such mode and decode in full.
    """
    if isinstance(image, PlainPNG):
        return image.load()
    with _as_client_errors(None):
        if at_least is not None and image.format == "JPEG":
            wanted = at_least[::-1] if _orientation(image) in _SWAPS_AXES else at_least
            image.draft(image.mode, (max(1, wanted[0]), max(1, wanted[1])))
        image.load()
        transpose = _TRANSPOSES.get(_orientation(image))
        return image if transpose is None else image.transpose(transpose)


def _orientation(image: Image.Image) -> int:
    """The image's EXIF orientation, 1 (as stored) unless its tag holds exactly an integer 2 to 8.

    The one reading of the tag, for the pixels (``load_image``) and for the geometry boxes refer to
    (``oriented_size``), so the two cannot disagree. The pixels decode whatever the metadata holds, so
    unreadable metadata (a truncated or malformed EXIF block, a tag of another type: a string, a
    rational) means no orientation, not a refused image. Pillow's own ``exif_transpose`` is not used: it
    also rewrites the EXIF block, which raises on tags of unusual types.
    """
    try:
        value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # EXIF parsing raises struct.error, SyntaxError, TypeError, ... on bad bytes
        return 1
    return value if type(value) is int and value in _TRANSPOSES else 1


@contextlib.contextmanager
def _as_client_errors(max_pixels: int | None) -> Iterator[None]:
    """Pillow reports truncated, corrupt or oversized data with several exception types: map them."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = f" of {max_pixels} pixels" if max_pixels is not None else ""
        raise ImageTooLarge(f"image exceeds the limit{limit}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidImage("the data is not a readable image") from None


def _open(data: bytes) -> Image.Image:
    """Probe only the allowed formats first; anything else is reopened so its refusal names its format."""
    try:
        image = Image.open(io.BytesIO(data), formats=_PROBE)
    except UnidentifiedImageError:
        return Image.open(io.BytesIO(data))
    if image.format == "MPO":
        # A JPEG that carries secondary images after its own (HDR gain maps, depth maps, stereo views, as
        # phone cameras write them): Pillow calls it MPO. Its primary image is the photo, a plain JPEG.
        return JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    return image
