"""Bytes to a Pillow image: format allow-list, pixel limit checked from the header, EXIF orientation."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import ImageTooLarge, InvalidImage

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})
_PROBE = tuple(sorted(ALLOWED_FORMATS))
MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/bmp"})


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode one image, refusing bombs before any pixel is allocated.

    ``Image.open`` reads only the header, so ``img.size`` is known before ``load()`` allocates. Pillow's own
    bomb guard (``Image.MAX_IMAGE_PIXELS``) is process-global, so we leave it alone and check our limit here;
    its error and warning, should an image exceed Pillow's far larger default, are refused the same way.
    """
    if not data:
        raise InvalidImage("empty image")
    try:
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
        image.load()
        # In place: without an orientation tag the copying variant returns a full copy of the pixels.
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"image exceeds the limit of {max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        # Pillow reports truncated or corrupt data with several exception types; all mean "not an image".
        raise InvalidImage("the data is not a readable image") from None


def _open(data: bytes) -> Image.Image:
    """Probe only the allowed formats first; anything else is reopened so its refusal names its format."""
    try:
        return Image.open(io.BytesIO(data), formats=_PROBE)
    except UnidentifiedImageError:
        return Image.open(io.BytesIO(data))
