"""Training the LeNet classifiers on the training split, freshly augmented every epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from poolserve.models.distortions import TRAINING, DistortionRanges, distort_digits
from poolserve.models.mnist import DigitSplit
from poolserve.models.training import SEED, Batch, TrainingReport, configure_determinism, fit, normalize
from poolserve.models.zoo import ModelSpec

BATCH_SIZE = 64


def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 500) -> NDArray[np.int64]:
    with torch.no_grad():
        logits = torch.cat([model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])
    return logits.argmax(1).numpy()


def train_classifier(
    spec: ModelSpec, train: DigitSplit, seed: int = SEED, ranges: DistortionRanges = TRAINING
) -> tuple[nn.Module, TrainingReport]:
    """Each epoch distorts every training image anew (``ranges``), then visits them in a new order."""
    generator = configure_determinism(seed)
    model = spec.build()
    augment_rng = np.random.default_rng(seed)
    labels = torch.from_numpy(train.labels)

    def epoch_batches(epoch: int) -> Iterator[Batch]:
        inputs = normalize(distort_digits(train.images, augment_rng, ranges))
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            yield Batch((inputs[batch],), labels[batch])

    steps = (len(train) + BATCH_SIZE - 1) // BATCH_SIZE
    return model, fit(model, spec, epoch_batches, steps, len(train), seed)
