"""The augmentation recipe: deterministic per seed, shifted ranges wider than training's, ink preserved."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from poolserve.models.distortions import SHIFTED, TRAINING, distort_digits, reshape_digit, restyle
from poolserve.models.mnist import held_out_split


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return held_out_split().test.images[::50]


def test_same_seed_same_images_and_another_seed_differs(digits: np.ndarray):
    first = distort_digits(digits, np.random.default_rng(5), SHIFTED)
    again = distort_digits(digits, np.random.default_rng(5), SHIFTED)
    other = distort_digits(digits, np.random.default_rng(6), SHIFTED)
    np.testing.assert_array_equal(first, again)
    assert first.shape == digits.shape and first.dtype == np.uint8
    assert not np.array_equal(first, other)


def test_shifted_ranges_contain_the_training_ranges():
    for field in dataclasses.fields(TRAINING):
        train, shifted = getattr(TRAINING, field.name), getattr(SHIFTED, field.name)
        if field.name == "untouched":
            assert shifted == 0.0 < train  # every shifted image is changed
        elif isinstance(train, tuple):
            assert shifted[0] <= train[0] and shifted[1] >= train[1], field.name
            assert shifted != train, field.name
        else:
            assert shifted > train, field.name


def test_untouched_fraction_passes_images_through(digits: np.ndarray):
    ranges = dataclasses.replace(TRAINING, untouched=1.0)
    np.testing.assert_array_equal(distort_digits(digits, np.random.default_rng(0), ranges), digits)


# Every change drawn from a single value that leaves the image as it is.
IDENTITY = dataclasses.replace(
    TRAINING,
    scale=(1.0, 1.0),
    aspect=(1.0, 1.0),
    rotation_deg=0.0,
    shear=0.0,
    translation_px=0.0,
    stroke=(0, 0),
    blur_sigma=(0.0, 0.0),
    resample=(1.0, 1.0),
    background=(0.0, 0.0),
    contrast=(1.0, 1.0),
    noise_std=(0.0, 0.0),
    untouched=0.0,
)


def test_identity_ranges_change_nothing(digits: np.ndarray):
    rng = np.random.default_rng(0)
    for image in digits:
        out = restyle(reshape_digit(image, rng, IDENTITY), rng, IDENTITY)
        assert np.abs(out.astype(int) - image.astype(int)).max() <= 1  # bilinear at pixel centres


def test_background_and_contrast_set_the_levels(digits: np.ndarray):
    grey = dataclasses.replace(IDENTITY, background=(0.25, 0.25), contrast=(0.5, 0.5))
    out = restyle(digits[0], np.random.default_rng(0), grey)
    assert out.min() == round(0.25 * 255)
    assert out.max() == round((0.25 + 0.5 * 0.75) * 255)


@pytest.mark.parametrize("steps", [-1, 1])
def test_stroke_steps_thin_or_thicken(digits: np.ndarray, steps: int):
    fixed = dataclasses.replace(IDENTITY, stroke=(steps, steps))
    ink = [(reshape_digit(d, np.random.default_rng(0), fixed) > 127).sum() - (d > 127).sum() for d in digits]
    # thinning is skipped where it would erase most of the ink, so some thin digits stay as they are
    assert all(np.sign(change) in (0, steps) for change in ink)
    assert sum(np.sign(change) == steps for change in ink) >= 0.75 * len(ink)
