"""What each request carries, drawn from the corpus: pure functions of a seeded ``random.Random``.

The locust users (``poolserve.loadtests.scenarios``) only send what these return, so the request mix can be
tested
without starting a load generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poolserve.loadtests import corpus, regions
from poolserve.loadtests.config import Scenario, TargetModels
from poolserve.loadtests.corpus import EncodedImage
from poolserve.loadtests.regions import RegionImage

DIGIT_SHARE = 0.5  # classification draws digits half the time, photos otherwise
PHOTO_SHARE_OF_REGIONS = 0.2
REGION_PHOTO_MAX_SIDE = 320
# (images per request, weight) for batch classification.
BATCH_SIZES = ((2, 0.3), (4, 0.3), (8, 0.2), (16, 0.15), (32, 0.05))
# The mixed workload: mostly single images, as interactive clients send them, plus batches and regions.
MIXED_WEIGHTS = {
    "classify-multipart": 40,
    "classify-json": 15,
    "classify-raw": 10,
    "classify-batch": 15,
    "features": 20,
}


def scenario_weights(scenario: Scenario, models: TargetModels) -> dict[str, int]:
    """The request kinds a scenario sends, with weights; the mixed one drops kinds the target has no model
    for. Raises ``ValueError`` when nothing is left."""
    weights = MIXED_WEIGHTS if scenario is Scenario.MIXED else {scenario.value: 1}
    usable = {
        kind: weight
        for kind, weight in weights.items()
        if (models.region_features if kind == "features" else models.classification)
    }
    if not usable:
        raise ValueError(f"the target has no ready model that scenario {scenario.value!r} needs")
    return usable


@dataclass(frozen=True)
class Corpus:
    digits: list[EncodedImage]
    photos: list[EncodedImage]
    canvases: list[RegionImage]
    region_photos: list[RegionImage]

    def describe(self) -> dict[str, object]:
        return {
            "digits": corpus.describe(self.digits),
            "photos": corpus.describe(self.photos),
            "canvases": corpus.describe([c.image for c in self.canvases]),
        }


def build_corpus(seed: int, digits_dir: Path | None, canvases_dir: Path | None) -> Corpus:
    """Everything a run sends, built once, before the first request: same seed, same bytes."""
    rng = np.random.default_rng(seed)
    found = corpus.digit_pixels(digits_dir)
    digits = corpus.digits(found, rng)
    photos = corpus.photos(rng)
    # The stored canvases are few: composed ones join them so that no canvas is replayed over and over.
    stored = regions.stored_canvases(canvases_dir) if canvases_dir and canvases_dir.is_dir() else []
    canvases = stored + regions.composed_canvases([pixels for _, pixels, _ in found], rng)
    region_photos = [RegionImage(p, ()) for p in photos if max(p.width, p.height) <= REGION_PHOTO_MAX_SIDE]
    return Corpus(digits, photos, canvases, region_photos)


@dataclass(frozen=True)
class RegionRequest:
    images: list[EncodedImage]
    boxes: list[list[list[float]]]  # per image, [x1, y1, x2, y2] in its own pixels

    @property
    def box_counts(self) -> list[int]:
        return [len(b) for b in self.boxes]


def classify_image(rng: random.Random, images: Corpus) -> EncodedImage:
    pool = images.digits if rng.random() < DIGIT_SHARE else images.photos
    return rng.choice(pool)


def classify_batch(rng: random.Random, images: Corpus) -> list[EncodedImage]:
    size = regions.draw_weighted(rng, BATCH_SIZES)
    return [classify_image(rng, images) for _ in range(size)]


def region_request(rng: random.Random, images: Corpus) -> RegionRequest:
    chosen: list[RegionImage] = []
    for _ in range(regions.draw_weighted(rng, regions.IMAGES_PER_REQUEST)):
        use_photo = images.region_photos and rng.random() < PHOTO_SHARE_OF_REGIONS
        chosen.append(rng.choice(images.region_photos if use_photo else images.canvases))
    boxes = [regions.draw_boxes(rng, item, regions.draw_box_count(rng)) for item in chosen]
    return RegionRequest([item.image for item in chosen], boxes)
