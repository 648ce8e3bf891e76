"""What every training run shares: determinism, input normalization, the training loop, checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn
from tqdm import tqdm

from poolserve.models.mnist import normalized_digits
from poolserve.models.zoo import ModelSpec

SEED = 0
# One thread: the same weights on every machine with the same torch build, and no OpenMP threads
# spinning against each other on a shared CI runner (training is small enough not to need more).
THREADS = 1


def configure_determinism(seed: int = SEED, threads: int = THREADS) -> torch.Generator:
    """Same seed, same thread count, deterministic kernels: the same weights on the same machine."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def normalize(images: NDArray[np.uint8]) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W), exactly the manifest's preprocessing."""
    return torch.from_numpy(normalized_digits(images))


@dataclass(frozen=True)
class TrainingReport:
    name: str
    epochs: int
    seconds: float
    train_samples: int
    seed: int
    threads: int
    torch_version: str


@dataclass(frozen=True)
class Batch:
    """Model inputs in ``forward`` order and one label per output row."""

    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor


# Epoch number -> that epoch's batches (each epoch may draw fresh augmentations).
EpochBatches = Callable[[int], Iterator[Batch]]


def _logits(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Classifiers return logits; region models return ``(features, logits)``."""
    return output[-1] if isinstance(output, tuple) else output


def fit(
    model: nn.Module,
    spec: ModelSpec,
    epoch_batches: EpochBatches,
    steps_per_epoch: int,
    train_samples: int,
    seed: int,
) -> TrainingReport:
    """Adam with a one-cycle schedule and cross-entropy on the logits, for the spec's epochs at its
    learning rate. The model is left in eval mode."""
    name, epochs, learning_rate = spec.name, spec.epochs, spec.learning_rate
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=total)
    started = time.perf_counter()
    model.train()
    with tqdm(total=total, desc=f"train {name}", unit="step") as progress:
        for epoch in range(epochs):
            for batch in epoch_batches(epoch):
                loss = F.cross_entropy(_logits(model(*batch.inputs)), batch.labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                progress.set_postfix(loss=f"{loss.item():.3f}")
                progress.update()
    model.eval()
    seconds = time.perf_counter() - started
    return TrainingReport(name, epochs, seconds, train_samples, seed, THREADS, str(torch.__version__))


def checkpoint_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.pt"


def save_checkpoint(directory: Path, model: nn.Module, report: TrainingReport) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, report.name)
    torch.save({"state_dict": model.state_dict(), "report": asdict(report)}, path)
    return path


def load_checkpoint(directory: Path, name: str, model: nn.Module) -> TrainingReport:
    path = checkpoint_path(directory, name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint; run `poolserve train {name}` first")
    payload = torch.load(path, weights_only=True)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return TrainingReport(**payload["report"])
