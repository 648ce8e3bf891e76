"""How handwritten digits vary beyond MNIST's own drawing: random shape and appearance changes (numpy +
Pillow, torch-free).

One recipe, two sets of ranges: :data:`TRAINING` augments the training split; :data:`SHIFTED` draws
from wider ranges and builds the shifted held-out evaluation from the test split. A digit's *shape*
(geometry, stroke width) changes per digit; its *appearance* (blur, resampling, contrast, background
level, noise) changes per image, so a canvas of several digits shares one appearance.

Images are uint8, white ink on black, like MNIST; every function returns a new uint8 array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

Range = tuple[float, float]


@dataclass(frozen=True)
class DistortionRanges:
    """Each change is drawn uniformly from its range (``aspect`` log-uniformly), independently."""

    scale: Range  # ink size factor
    aspect: Range  # width / height factor
    rotation_deg: float  # +- degrees
    shear: float  # +- horizontal shear (x += shear * y)
    translation_px: float  # +- pixels per axis, at 28x28
    stroke: tuple[int, int]  # 2x2 erosion (< 0) or dilation (> 0) steps, inclusive range
    blur_sigma: Range  # Gaussian blur radius in pixels at 28x28 (0 = none)
    resample: Range  # down-sampling factor before scaling back up (1 = none)
    background: Range  # background level, fraction of white
    contrast: Range  # ink level above the background, fraction of what is left up to white
    noise_std: Range  # Gaussian pixel noise, fraction of white
    untouched: float = 0.0  # fraction of images passed through unchanged


TRAINING = DistortionRanges(
    scale=(0.8, 1.15),
    aspect=(0.8, 1.25),
    rotation_deg=15.0,
    shear=0.15,
    translation_px=2.5,
    stroke=(-1, 1),
    blur_sigma=(0.0, 1.0),
    resample=(0.6, 1.0),
    background=(0.0, 0.25),
    contrast=(0.5, 1.0),
    noise_std=(0.0, 0.08),
    untouched=0.2,
)

SHIFTED = DistortionRanges(
    scale=(0.7, 1.25),
    aspect=(0.7, 1.43),
    rotation_deg=22.0,
    shear=0.25,
    translation_px=3.5,
    stroke=(-1, 2),
    blur_sigma=(0.0, 1.4),
    resample=(0.45, 1.0),
    background=(0.0, 0.35),
    contrast=(0.35, 1.0),
    noise_std=(0.0, 0.12),
)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _affine(image: NDArray[np.uint8], rng: np.random.Generator, ranges: DistortionRanges) -> Image.Image:
    """Scale, aspect, shear, rotation about the image centre, then translation (bilinear)."""
    height, width = image.shape
    scale = _uniform(rng, ranges.scale)
    aspect = math.exp(_uniform(rng, (math.log(ranges.aspect[0]), math.log(ranges.aspect[1]))))
    angle = math.radians(_uniform(rng, (-ranges.rotation_deg, ranges.rotation_deg)))
    shear = _uniform(rng, (-ranges.shear, ranges.shear))
    size_factor = max(height, width) / 28.0
    tx, ty = (_uniform(rng, (-ranges.translation_px, ranges.translation_px)) * size_factor for _ in range(2))
    sx, sy = scale * math.sqrt(aspect), scale / math.sqrt(aspect)
    cos, sin = math.cos(angle), math.sin(angle)
    # forward map (input -> output, about the centre): rotation @ shear @ diag(sx, sy)
    a, b = cos * sx, (cos * shear - sin) * sy
    c, d = sin * sx, (sin * shear + cos) * sy
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    cx, cy = width / 2.0, height / 2.0
    ox, oy = cx + tx, cy + ty
    # PIL wants output -> input: in = inverse @ (out - centre - t) + centre
    coefficients = (ia, ib, cx - ia * ox - ib * oy, ic, id_, cy - ic * ox - id_ * oy)
    return Image.fromarray(image).transform(
        (width, height), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=0
    )


def _stroke(image: NDArray[np.uint8], steps: int) -> NDArray[np.uint8]:
    """Each step thickens (max) or thins (min) strokes by one pixel over a 2x2 neighbourhood."""
    out = image
    for _ in range(abs(steps)):
        padded = np.pad(out, ((0, 1), (0, 1)))
        views = (padded[:-1, :-1], padded[1:, :-1], padded[:-1, 1:], padded[1:, 1:])
        out = np.maximum.reduce(views) if steps > 0 else np.minimum.reduce(views)
    return out


def reshape_digit(
    image: NDArray[np.uint8], rng: np.random.Generator, ranges: DistortionRanges
) -> NDArray[np.uint8]:
    """The digit's geometry and stroke width, drawn from ``ranges``; thinning that would erase most of
    the ink is skipped (a thin digit stays thin rather than vanishing)."""
    moved = np.asarray(_affine(image, rng, ranges), dtype=np.uint8)
    steps = int(rng.integers(ranges.stroke[0], ranges.stroke[1] + 1))
    stroked = _stroke(moved, steps)
    if steps < 0 and int(stroked.sum()) < 0.4 * int(moved.sum()):
        return moved
    return stroked


def restyle(
    image: NDArray[np.uint8], rng: np.random.Generator, ranges: DistortionRanges, digit_size: int = 28
) -> NDArray[np.uint8]:
    """Blur, resampling, background level, contrast and noise, drawn from ``ranges``. ``digit_size`` is
    the size a digit has in ``image``: blur radii scale with it, as if the page were scanned larger."""
    height, width = image.shape
    zoom = digit_size / 28.0
    picture = Image.fromarray(image)
    sigma = _uniform(rng, ranges.blur_sigma) * zoom
    if sigma > 0.05:
        picture = picture.filter(ImageFilter.GaussianBlur(sigma))
    factor = _uniform(rng, ranges.resample)
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    if small != (width, height):
        picture = picture.resize(small, Image.Resampling.BILINEAR).resize(
            (width, height), Image.Resampling.BILINEAR
        )
    background = _uniform(rng, ranges.background)
    contrast = _uniform(rng, ranges.contrast)
    noise = _uniform(rng, ranges.noise_std)
    ink = np.asarray(picture, dtype=np.float64) / 255.0
    level = background + contrast * (1.0 - background) * ink
    level = level + rng.normal(0.0, noise, size=level.shape) if noise > 0 else level
    return np.clip(np.rint(level * 255.0), 0, 255).astype(np.uint8)


def distort_digit(
    image: NDArray[np.uint8], rng: np.random.Generator, ranges: DistortionRanges
) -> NDArray[np.uint8]:
    """One digit reshaped and restyled (or untouched, with probability ``ranges.untouched``)."""
    if ranges.untouched and rng.uniform() < ranges.untouched:
        return image.copy()
    return restyle(reshape_digit(image, rng, ranges), rng, ranges, digit_size=image.shape[0])


def distort_digits(
    images: NDArray[np.uint8], rng: np.random.Generator, ranges: DistortionRanges
) -> NDArray[np.uint8]:
    """(N, H, W) -> (N, H, W), each image distorted independently, in order."""
    return np.stack([distort_digit(image, rng, ranges) for image in images]) if len(images) else images.copy()
