"""The request pixel budget (from headers, before decoding) and JPEG decoding at reduced scale."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from poolserve.repository.manifest import Preprocessing
from poolserve.service.errors import ImageTooLarge, LimitExceeded
from poolserve.service.imaging.image_decoder import load_image, open_image
from poolserve.service.imaging.preprocess import decode_and_preprocess, map_boxes

SPEC = Preprocessing(color_mode="L", height=28, width=28, mean=[0.1307], std=[0.3081])
WIDE = Preprocessing(
    color_mode="RGB", height=48, width=192, resize="fit-height-pad-width", mean=[0.5] * 3, std=[0.5] * 3
)


def jpeg(size: tuple[int, int], orientation: int = 1) -> bytes:
    """A smooth gradient with a bright disc: something a reduced decode can be compared on."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    pixels = (x / width * 120 + y / height * 80).astype(np.uint8)
    pixels[(x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(size) / 4) ** 2] = 250
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, format="JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_large_jpeg_decodes_at_reduced_scale_but_never_below_the_size_asked() -> None:
    image = load_image(open_image(jpeg((1024, 768)), max_pixels=1 << 24), at_least=(28, 28))
    assert image.size == (128, 96)  # 1/8: the smallest libjpeg scale, still >= 28 x 28
    image = load_image(open_image(jpeg((1024, 768)), max_pixels=1 << 24), at_least=(300, 300))
    assert image.size == (512, 384)  # 1/2: 1/4 would be 256 x 192, below what was asked


@pytest.mark.parametrize("orientation", [1, 6], ids=["upright", "exif-rotated"])
@pytest.mark.parametrize("spec", [SPEC, WIDE], ids=["stretch", "fit-height"])
def test_reduced_decode_changes_pixels_a_little_and_geometry_not_at_all(
    spec: Preprocessing, orientation: int
) -> None:
    blob = jpeg((1600, 1200), orientation)
    full, full_transforms = decode_and_preprocess([blob], spec, 1 << 24, reduced_jpeg=False)
    reduced, reduced_transforms = decode_and_preprocess([blob], spec, 1 << 24, reduced_jpeg=True)
    assert reduced_transforms == full_transforms  # boxes map exactly as before
    assert reduced_transforms[0].original_size == ((1200, 1600) if orientation == 6 else (1600, 1200))
    boxes = np.array([[100, 200, 900, 1100]], np.float32)
    np.testing.assert_array_equal(
        map_boxes(boxes, reduced_transforms[0]), map_boxes(boxes, full_transforms[0])
    )
    # Both are downscales of the same picture: they differ by resampling, not by content. Normalized
    # units (1/255/std per grey level); 0.1 is about 8 grey levels on average.
    assert np.abs(reduced - full).mean() < 0.1
    assert not np.array_equal(reduced, full)  # the reduced path was taken


def test_small_jpegs_and_other_formats_decode_as_before() -> None:
    for blob in (jpeg((40, 40)), png((500, 500))):
        full, _ = decode_and_preprocess([blob], SPEC, 1 << 24, reduced_jpeg=False)
        reduced, _ = decode_and_preprocess([blob], SPEC, 1 << 24, reduced_jpeg=True)
        np.testing.assert_array_equal(reduced, full)


def test_the_request_pixel_budget_is_checked_from_every_header_before_any_decoding() -> None:
    # The second image's pixel data is cut off: decoding anything would fail on it as unreadable, so
    # the budget's 413 proves the refusal came from the headers alone.
    truncated = png((3000, 3000))[:100]
    with pytest.raises(ImageTooLarge, match="total 10000000 pixels; the limit per request is 9999999"):
        decode_and_preprocess([png((1000, 1000)), truncated], SPEC, 1 << 24, max_request_pixels=9_999_999)
    batch, _ = decode_and_preprocess([png((1000, 1000))] * 2, SPEC, 1 << 24, max_request_pixels=2_000_000)
    assert batch.shape == (2, 1, 28, 28)


def test_model_input_pixels_per_request_are_bounded_before_any_header_is_read() -> None:
    big_input = Preprocessing(color_mode="RGB", height=512, width=512, mean=[0.5] * 3, std=[0.5] * 3)
    # 17 x 512 x 512 is over 4 Mi; the blobs are not even images, so the refusal came first.
    with pytest.raises(LimitExceeded, match="17 images; this model's 512x512 input takes at most 16"):
        decode_and_preprocess([b"not read"] * 17, big_input, 1 << 24, max_request_input_pixels=4 << 20)
    batch, _ = decode_and_preprocess([png((8, 8))] * 16, big_input, 1 << 24, max_request_input_pixels=4 << 20)
    assert batch.shape == (16, 3, 512, 512)
