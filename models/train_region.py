"""Training the region models on canvases of training-split digits, freshly composed every epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from poolserve.models.canvas import Canvas, distorted_canvas
from poolserve.models.distortions import TRAINING, DistortionRanges
from poolserve.models.mnist import DigitSplit
from poolserve.models.region_boxes import LabelledBoxes, training_boxes
from poolserve.models.training import SEED, Batch, TrainingReport, configure_determinism, fit, normalize
from poolserve.models.zoo import ModelSpec

CANVASES_PER_BATCH = 16


def collate(canvases: list[Canvas], labelled: list[LabelledBoxes]) -> Batch:
    images = normalize(np.stack([c.image for c in canvases]))
    boxes = torch.from_numpy(np.concatenate([lb.boxes for lb in labelled]))
    indices = torch.from_numpy(
        np.concatenate([np.full(len(lb.labels), i, dtype=np.int64) for i, lb in enumerate(labelled)])
    )
    labels = torch.from_numpy(np.concatenate([lb.labels for lb in labelled]))
    return Batch((images, boxes, indices), labels)


def train_region(
    spec: ModelSpec,
    train: DigitSplit,
    seed: int = SEED,
    ranges: DistortionRanges = TRAINING,
    canvases_per_epoch: int | None = None,
) -> tuple[nn.Module, TrainingReport]:
    """Each epoch composes ``canvases_per_epoch`` (default: the spec's) new canvases of distorted
    training digits and draws detector-like and background boxes on them
    (:func:`poolserve.models.region_boxes.training_boxes`)."""
    canvases_per_epoch = canvases_per_epoch or spec.canvases_per_epoch
    configure_determinism(seed)
    model = spec.build()
    rng = np.random.default_rng(seed)

    def epoch_batches(epoch: int) -> Iterator[Batch]:
        for start in range(0, canvases_per_epoch, CANVASES_PER_BATCH):
            count = min(CANVASES_PER_BATCH, canvases_per_epoch - start)
            chosen = [distorted_canvas(train, rng, ranges) for _ in range(count)]
            yield collate(chosen, [training_boxes(c, rng) for c in chosen])

    steps = (canvases_per_epoch + CANVASES_PER_BATCH - 1) // CANVASES_PER_BATCH
    return model, fit(model, spec, epoch_batches, steps, spec.epochs * canvases_per_epoch, seed)
