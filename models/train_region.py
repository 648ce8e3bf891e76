"""Training the region models on canvases of training-split digits; evaluating on test-split canvases."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.canvas import Canvas, compose_canvases
from models.mnist import DigitSplit
from models.regions import LabelledBoxes, training_boxes
from models.training import SEED, THREADS, TrainingReport, configure_determinism, normalize
from models.zoo import ModelSpec

TRAIN_CANVASES = 1200
EVAL_CANVASES = 300
CANVAS_SEED_TRAIN = 1
CANVAS_SEED_EVAL = 2
CANVASES_PER_BATCH = 16


@dataclass(frozen=True)
class RegionBatch:
    images: torch.Tensor
    boxes: torch.Tensor
    box_batch_indices: torch.Tensor
    labels: torch.Tensor


def collate(canvases: list[Canvas], labelled: list[LabelledBoxes]) -> RegionBatch:
    images = normalize(np.stack([c.image for c in canvases]))
    boxes = torch.from_numpy(np.concatenate([lb.boxes for lb in labelled]))
    indices = torch.from_numpy(
        np.concatenate([np.full(len(lb.labels), i, dtype=np.int64) for i, lb in enumerate(labelled)])
    )
    labels = torch.from_numpy(np.concatenate([lb.labels for lb in labelled]))
    return RegionBatch(images, boxes, indices, labels)


def evaluation_canvases(test: DigitSplit, count: int = EVAL_CANVASES) -> list[Canvas]:
    """Canvases built only from held-out digits, with their true boxes."""
    return compose_canvases(test, count, CANVAS_SEED_EVAL)


def train_region(spec: ModelSpec, train: DigitSplit, seed: int = SEED) -> tuple[nn.Module, TrainingReport]:
    generator = configure_determinism(seed)
    model = spec.build()
    canvases = compose_canvases(train, TRAIN_CANVASES, CANVAS_SEED_TRAIN)
    box_rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    per_epoch = (len(canvases) + CANVASES_PER_BATCH - 1) // CANVASES_PER_BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=spec.learning_rate, total_steps=spec.epochs * per_epoch
    )
    started = time.perf_counter()
    model.train()
    with tqdm(total=spec.epochs * per_epoch, desc=f"train {spec.name}", unit="step") as progress:
        for _ in range(spec.epochs):
            order = torch.randperm(len(canvases), generator=generator).tolist()
            for start in range(0, len(canvases), CANVASES_PER_BATCH):
                chosen = [canvases[i] for i in order[start : start + CANVASES_PER_BATCH]]
                batch = collate(chosen, [training_boxes(c, box_rng) for c in chosen])
                _, logits = model(batch.images, batch.boxes, batch.box_batch_indices)
                loss = F.cross_entropy(logits, batch.labels)
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
        len(canvases),
        seed,
        THREADS,
        str(torch.__version__),
    )
    return model, report
