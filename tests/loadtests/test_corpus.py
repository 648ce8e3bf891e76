from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from poolserve.loadtests import corpus as corpus_module
from poolserve.loadtests import regions
from poolserve.loadtests.workload import Corpus, build_corpus
from tests.loadtests.conftest import CANVASES, DIGITS


def fingerprint(images: Corpus) -> str:
    digest = hashlib.sha256()
    for item in [*images.digits, *images.photos, *(c.image for c in images.canvases)]:
        digest.update(item.data)
    return digest.hexdigest()


def test_the_same_seed_builds_the_same_bytes(corpus: Corpus) -> None:
    assert fingerprint(build_corpus(0, DIGITS, CANVASES)) == fingerprint(corpus)


def test_a_different_seed_draws_different_digits(corpus: Corpus) -> None:
    found = corpus_module.digit_pixels(DIGITS)
    other = corpus_module.digits(found, np.random.default_rng(1))
    assert [d.source for d in other] != [d.source for d in corpus.digits]


def test_photos_come_at_several_sizes_in_both_encodings(corpus: Corpus) -> None:
    sources = {p.source for p in corpus.photos}
    assert {"skimage:astronaut", "skimage:chelsea", "skimage:coffee", "skimage:rocket"} <= sources
    for source in sources:
        variants = {(p.media_type, max(p.width, p.height)) for p in corpus.photos if p.source == source}
        assert {"image/jpeg", "image/png"} == {m for m, _ in variants}
        assert len({side for _, side in variants}) >= 3, source


def test_no_image_is_sent_twice_under_two_names(corpus: Corpus) -> None:
    blobs = [i.data for i in [*corpus.digits, *corpus.photos, *(c.image for c in corpus.canvases)]]
    assert len(set(blobs)) == len(blobs)
    assert len(corpus.digits) > 100 and len(corpus.canvases) > 50


def test_every_image_decodes_to_its_declared_size_and_type(corpus: Corpus) -> None:
    formats = {"image/png": "PNG", "image/jpeg": "JPEG"}
    for item in [*corpus.digits[:50], *corpus.photos, *(c.image for c in corpus.canvases[:20])]:
        with Image.open(io.BytesIO(item.data)) as image:
            assert image.format == formats[item.media_type]
            assert image.size == (item.width, item.height)


def test_heldout_digit_files_are_sent_as_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "digits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i % 10}_{i:03d}.png")
    found = corpus_module.digit_pixels(folder)
    assert [name for name, *_ in found][:2] == ["digits/0_000.png", "digits/0_010.png"]
    encoded = corpus_module.digits(found, np.random.default_rng(0))
    # Every file, then scikit-learn's scans to top up: 40 files alone would be replayed over and over.
    assert len(encoded) == corpus_module.MAX_DIGITS
    assert [e.source for e in encoded[:40]] == [name for name, *_ in found[:40]]
    assert all(e.source.startswith("sklearn:") for e in encoded[40:])
    originals = {(folder.parent / e.source).read_bytes() for e in encoded[:40]}
    as_sent = [e for e in encoded[:40] if e.data in originals]
    assert as_sent and all(e.media_type == "image/png" and e.width == 28 for e in as_sent)
    assert len(as_sent) < 40  # and the others re-encoded (JPEG, larger sides)


def test_without_heldout_digits_the_scikit_learn_scans_are_used(tmp_path: Path) -> None:
    found = corpus_module.digit_pixels(tmp_path / "missing")
    assert len(found) == 1797 and found[0][0].startswith("sklearn:digits[")
    assert found[0][1].shape == (28, 28) and found[0][1][:4].max() == 0  # MNIST framing: empty margin


def test_stored_canvases_come_with_their_boxes_and_composed_ones_join_them(corpus: Corpus) -> None:
    stored = regions.stored_canvases(CANVASES)
    assert corpus.canvases[: len(stored)] == stored
    assert len(corpus.canvases) == len(stored) + regions.COMPOSED_CANVASES
    for canvas in corpus.canvases:
        assert canvas.objects, canvas.image.source
        for x1, y1, x2, y2 in canvas.objects:
            assert 0 <= x1 < x2 <= canvas.image.width and 0 <= y1 < y2 <= canvas.image.height
