"""Inline (event loop) and worker-thread decoding give the same tensors and the same errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from poolserve.repository.manifest import Manifest, Preprocessing
from poolserve.service.api.request_decoding import decode_images
from poolserve.service.errors import InvalidImage
from poolserve.service.settings import Settings
from tests.service.conftest import DATA, REPOSITORY

INLINE = Settings(repository=REPOSITORY)  # default threshold: a few digit PNGs are decoded inline
THREAD = Settings(repository=REPOSITORY, inline_decode_max_bytes=0)


def _spec(model: str) -> Preprocessing:
    manifest = Manifest.model_validate_json((REPOSITORY / model / "1" / "manifest.json").read_bytes())
    return manifest.preprocessing


def test_digits_are_small_enough_to_decode_inline() -> None:
    blobs = [p.read_bytes() for p in sorted((DATA / "digits").glob("*.png"))[:8]]
    assert sum(map(len, blobs)) <= INLINE.inline_decode_max_bytes


@pytest.mark.parametrize("model", ["lenet5-mnist", "digits-roialign"])
def test_both_paths_give_identical_tensors_and_transforms(model: str) -> None:
    spec = _spec(model)
    blobs = [p.read_bytes() for p in sorted((DATA / "digits").glob("*.png"))[:8]]
    blobs.append((DATA / "canvases" / "canvas_0.png").read_bytes())
    inline = asyncio.run(decode_images(blobs, spec, INLINE))
    threaded = asyncio.run(decode_images(blobs, spec, THREAD))
    assert np.array_equal(inline[0], threaded[0]) and inline[1] == threaded[1]


def test_both_paths_name_the_bad_image() -> None:
    spec = _spec("lenet5-mnist")
    blobs = [(DATA / "digits" / "0_0.png").read_bytes(), b"not an image"]
    details = []
    for settings in (INLINE, THREAD):
        with pytest.raises(InvalidImage) as caught:
            asyncio.run(decode_images(blobs, spec, settings))
        details.append(caught.value.detail)
    assert details[0] == details[1] and details[0].startswith("images[1]")
