from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from poolserve.repository.manifest import Preprocessing
from poolserve.service.imaging.preprocess import (
    ResizeTransform,
    map_boxes,
    normalization_table,
    preprocess,
    resized_size,
)


def gray(height: int, width: int, **kwargs: Any) -> Preprocessing:
    return Preprocessing(color_mode="L", height=height, width=width, mean=[0.5], std=[0.25], **kwargs)


def test_stretch_normalizes_exactly_as_the_manifest_says() -> None:
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    tensor, transform = preprocess(Image.fromarray(pixels), gray(4, 4))
    assert tensor.shape == (1, 4, 4) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0], (pixels / 255.0 - 0.5) / 0.25, atol=1e-6)
    assert transform == ResizeTransform(1.0, 1.0)


def test_stretch_scales_boxes_per_axis() -> None:
    tensor, transform = preprocess(Image.new("L", (200, 50)), gray(100, 100))
    assert tensor.shape == (1, 100, 100)
    boxes = np.array([[0, 0, 200, 50], [10, 5, 30, 25]], np.float32)
    np.testing.assert_allclose(map_boxes(boxes, transform), [[0, 0, 100, 100], [5, 10, 15, 50]])


def test_fit_height_pads_the_right_with_pad_value() -> None:
    spec = gray(20, 64, resize="fit-height-pad-width", pad_value=-9.0)
    tensor, transform = preprocess(Image.new("L", (20, 10), 255), spec)
    assert tensor.shape == (1, 20, 64)
    np.testing.assert_allclose(tensor[0, :, :40], (1.0 - 0.5) / 0.25)
    np.testing.assert_allclose(tensor[0, :, 40:], -9.0)
    assert transform == ResizeTransform(2.0, 2.0)


@pytest.mark.parametrize(
    ("size", "width"), [((11, 7), 76), ((20, 10), 96), ((1000, 10), 192), ((1, 1000), 1), ((6, 6), 48)]
)
def test_fit_height_rounds_the_width_up_as_paddleocr_does(size: tuple[int, int], width: int) -> None:
    # PaddleOCR's resize_norm_img: ceil(48 * 11 / 7) = ceil(75.43) = 76, where round() would give 75.
    spec = Preprocessing(
        color_mode="BGR", height=48, width=192, resize="fit-height-pad-width", mean=[0.5] * 3, std=[0.5] * 3
    )
    assert resized_size(size, spec) == (width, 48)


def test_fit_height_squeezes_too_wide_images_to_the_width() -> None:
    tensor, transform = preprocess(Image.new("L", (400, 10)), gray(20, 64, resize="fit-height-pad-width"))
    assert tensor.shape == (1, 20, 64)
    assert transform == ResizeTransform(64 / 400, 2.0)


@pytest.mark.parametrize("mode", ["RGB", "BGR"])
def test_color_modes_order_channels(mode: Any) -> None:
    spec = Preprocessing(color_mode=mode, height=2, width=2, mean=[0, 0, 0], std=[1, 1, 1], scale=1.0)
    tensor, _ = preprocess(Image.new("RGB", (2, 2), (1, 2, 3)), spec)
    expected = [1, 2, 3] if mode == "RGB" else [3, 2, 1]
    np.testing.assert_array_equal(tensor[:, 0, 0], expected)


def test_gray_model_accepts_color_and_alpha_images() -> None:
    tensor, _ = preprocess(Image.new("RGBA", (3, 3), (255, 255, 255, 128)), gray(3, 3))
    np.testing.assert_allclose(tensor, (1.0 - 0.5) / 0.25)


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    pixels = np.array([[0, 257 * 128], [65535, 257]], np.uint16)
    tensor, _ = preprocess(
        Image.fromarray(pixels),
        Preprocessing(color_mode="L", height=2, width=2, mean=[0], std=[1], scale=1.0),
    )
    np.testing.assert_array_equal(tensor[0], [[0, 128], [255, 1]])


@pytest.mark.parametrize(
    ("scale", "mean", "std"),
    [
        (1 / 255, (0.1307,), (0.3081,)),
        (1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        (1.0, (127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
        (2 / 255, (1.0,), (1.0,)),
        (0.003, (-0.25, 0.0, 3.0), (1e-3, 7.0, 0.5)),
    ],
)
def test_normalization_table_holds_the_arithmetics_own_bits(
    scale: float, mean: tuple[float, ...], std: tuple[float, ...]
) -> None:
    # Every 8-bit value in every channel, normalized the arithmetic way: the lookup must give these bits.
    values = np.arange(256, dtype=np.uint8)
    arithmetic = (values[None, :] * np.float32(scale) - np.asarray(mean, np.float32)[:, None]) / np.asarray(
        std, np.float32
    )[:, None]
    table = normalization_table(scale, mean, std)
    assert table.dtype == np.float32 and table.shape == (len(mean), 256)
    np.testing.assert_array_equal(table.view(np.uint32), arithmetic.astype(np.float32).view(np.uint32))
    assert not table.flags.writeable  # shared by every request of the model: nobody may change it
