"""Training the LeNet classifiers on the training split, with small random shifts."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn
from tqdm import tqdm

from models.mnist import DigitSplit
from models.training import SEED, THREADS, TrainingReport, configure_determinism, normalize
from models.zoo import ModelSpec

BATCH_SIZE = 64
MAX_SHIFT = 2


def random_shift(
    images: torch.Tensor, generator: torch.Generator, max_shift: int = MAX_SHIFT
) -> torch.Tensor:
    """Each image moved by up to ``max_shift`` pixels per axis, zero (background) filled."""
    size = images.shape[-1]
    background = float(images.min())
    padded = F.pad(images, (max_shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * max_shift + 1, (images.shape[0], 2), generator=generator)
    return torch.stack(
        [padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets.tolist())]
    )


def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 500) -> NDArray[np.int64]:
    with torch.no_grad():
        logits = torch.cat([model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])
    return logits.argmax(1).numpy()


def train_classifier(
    spec: ModelSpec, train: DigitSplit, seed: int = SEED
) -> tuple[nn.Module, TrainingReport]:
    generator = configure_determinism(seed)
    model = spec.build()
    inputs, labels = normalize(train.images), torch.from_numpy(train.labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    steps = spec.epochs * ((len(train) + BATCH_SIZE - 1) // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.learning_rate, total_steps=steps)
    started = time.perf_counter()
    model.train()
    with tqdm(total=steps, desc=f"train {spec.name}", unit="step") as progress:
        for _ in range(spec.epochs):
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), BATCH_SIZE):
                batch = order[start : start + BATCH_SIZE]
                loss = F.cross_entropy(model(random_shift(inputs[batch], generator)), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                progress.set_postfix(loss=f"{loss.item():.3f}")
                progress.update()
    model.eval()
    report = TrainingReport(
        spec.name,
        spec.epochs,
        time.perf_counter() - started,
        len(train),
        seed,
        THREADS,
        str(torch.__version__),
    )
    return model, report
