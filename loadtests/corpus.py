"""The images a run sends: real images, re-encoded at several sizes, built once per run from a seed.

Sources, all offline:
- handwritten digits: the held-out PNGs in ``tests/data/digits/`` when present (the files themselves plus
  re-encodings), else scikit-learn's bundled ``load_digits()`` scans, upscaled into MNIST's 28×28 framing;
- photographs shipped inside scikit-image (``skimage.data``) and scikit-learn (``load_sample_images()``),
  resized to several long sides and encoded as both JPEG and PNG: valid inputs for every model (the service
  converts and resizes), and they exercise decode cost the way real uploads do;
- canvases for the region models (``poolserve.loadtests.regions``).

Same seed, same library versions: the same bytes, so two runs compare like with like.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# Photos that load without a download, with their licences documented by scikit-image / scikit-learn.
SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "page", "text", "clock",
    "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
)  # fmt: skip
PHOTO_LONG_SIDES = (48, 128, 320, 640)
MAX_DIGITS = 256
DIGIT_SIZE = 28
# How a digit is re-encoded: (media type, side in px, weight). Uploads are mostly the PNG as it came.
DIGIT_VARIANTS = (
    ("image/png", 28, 0.5),
    ("image/jpeg", 28, 0.2),
    ("image/png", 56, 0.15),
    ("image/jpeg", 84, 0.15),
)

Pixels = NDArray[np.uint8]


@dataclass(frozen=True)
class EncodedImage:
    source: str  # where the pixels came from: "digits/7_0031.png", "skimage:coffee", ...
    media_type: str  # image/png or image/jpeg
    width: int
    height: int
    data: bytes
    b64: str  # precomputed: the load generator shares the CPU with what it measures

    @property
    def extension(self) -> str:
        return ".png" if self.media_type == "image/png" else ".jpg"


def encode(pixels: Pixels, media_type: str, source: str, quality: int = 90) -> EncodedImage:
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if media_type == "image/png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=quality)
    data = buffer.getvalue()
    return EncodedImage(source, media_type, image.width, image.height, data, base64.b64encode(data).decode())


def resize_long_side(pixels: Pixels, long_side: int) -> Pixels:
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)


def photo_sources() -> Iterator[tuple[str, Pixels]]:
    from skimage import data  # scikit-image: the load extra

    for name in SKIMAGE_PHOTOS:
        yield f"skimage:{name}", np.asarray(getattr(data, name)(), dtype=np.uint8)
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:  # scikit-learn is optional here: the load extra does not pull it
        return
    bunch = load_sample_images()
    for filename, pixels in zip(bunch.filenames, bunch.images, strict=True):
        yield f"sklearn:{Path(filename).stem}", np.asarray(pixels, dtype=np.uint8)


def photos(rng: np.random.Generator) -> list[EncodedImage]:
    """Every photo at every long side (no upscaling), as JPEG (quality 70..95) and as PNG."""
    encoded: list[EncodedImage] = []
    for source, pixels in photo_sources():
        for side in PHOTO_LONG_SIDES:
            if side > max(pixels.shape[:2]):
                continue
            resized = resize_long_side(pixels, side)
            encoded.append(encode(resized, "image/jpeg", source, quality=int(rng.integers(70, 96))))
            encoded.append(encode(resized, "image/png", source))
    return encoded


def heldout_digits(directory: Path) -> list[tuple[str, Pixels, bytes]]:
    """(name, 8-bit grey pixels, the file's own bytes) for every PNG under ``directory``, sorted by name."""
    found = []
    for path in sorted(directory.rglob("*.png")):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.uint8)
        found.append((path.relative_to(directory.parent).as_posix(), pixels, path.read_bytes()))
    return found


def sklearn_digits() -> list[tuple[str, Pixels, bytes | None]]:
    """scikit-learn's 8×8 scans (0..16 ink), scaled to 20×20 and centred in 28×28 like MNIST's digits."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RuntimeError(
            "no held-out digit PNGs (--digits) and no scikit-learn to draw digits from"
        ) from None

    found: list[tuple[str, Pixels, bytes | None]] = []
    for index, scan in enumerate(load_digits().images):
        ink = Image.fromarray(np.asarray(scan * (255 / 16), dtype=np.uint8)).resize(
            (20, 20), Image.Resampling.BILINEAR
        )
        framed = np.zeros((DIGIT_SIZE, DIGIT_SIZE), dtype=np.uint8)
        framed[4:24, 4:24] = np.asarray(ink, dtype=np.uint8)
        found.append((f"sklearn:digits[{index}]", framed, None))
    return found


def digit_pixels(directory: Path | None) -> list[tuple[str, Pixels, bytes | None]]:
    """The held-out files, topped up with scikit-learn's scans when there are fewer than ``MAX_DIGITS``
    (a handful of files would otherwise be replayed over and over)."""
    found: list[tuple[str, Pixels, bytes | None]] = []
    if directory is not None and directory.is_dir():
        found = [(name, pixels, raw) for name, pixels, raw in heldout_digits(directory)]
    if len(found) >= MAX_DIGITS:
        return found
    try:
        return found + sklearn_digits()
    except RuntimeError:
        if found:
            return found
        raise


def digits(found: list[tuple[str, Pixels, bytes | None]], rng: np.random.Generator) -> list[EncodedImage]:
    """``MAX_DIGITS`` digits (every held-out file first, the rest drawn), each in one encoding drawn from
    ``DIGIT_VARIANTS``."""
    files = [i for i, (_, _, raw) in enumerate(found) if raw is not None][:MAX_DIGITS]
    others = [i for i, (_, _, raw) in enumerate(found) if raw is None]
    extra: list[int] = []
    if others:
        size = min(MAX_DIGITS - len(files), len(others))
        extra = sorted(rng.choice(others, size=size, replace=False).tolist())
    chosen = np.array(files + extra, dtype=np.int64)
    weights = np.array([w for *_, w in DIGIT_VARIANTS])
    encoded = []
    for index in chosen.tolist():
        name, pixels, raw = found[index]
        media_type, side, _ = DIGIT_VARIANTS[int(rng.choice(len(DIGIT_VARIANTS), p=weights / weights.sum()))]
        if raw is not None and media_type == "image/png" and side == pixels.shape[0]:
            encoded.append(EncodedImage(name, media_type, side, side, raw, base64.b64encode(raw).decode()))
            continue
        resized = pixels if side == pixels.shape[0] else resize_long_side(pixels, side)
        encoded.append(encode(resized, media_type, name, quality=int(rng.integers(80, 96))))
    return encoded


def describe(images: list[EncodedImage]) -> dict[str, object]:
    """Counts by media type and size band, and the byte sizes: what the report says the run sent."""
    sizes = np.array([len(i.data) for i in images]) if images else np.zeros(1)
    return {
        "count": len(images),
        "sources": len({i.source for i in images}),
        "origins": dict(sorted(Counter(i.source.split(":")[0].split("/")[0] for i in images).items())),
        "media_types": dict(sorted(Counter(i.media_type for i in images).items())),
        "long_sides": dict(sorted(Counter(max(i.width, i.height) for i in images).items())),
        "bytes_min": int(sizes.min()),
        "bytes_median": int(np.median(sizes)),
        "bytes_max": int(sizes.max()),
    }
