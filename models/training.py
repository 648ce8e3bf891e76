"""What every training run shares: determinism, input normalization, checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.mnist import MNIST_MEAN, MNIST_STD

SEED = 0
THREADS = 2


def configure_determinism(seed: int = SEED, threads: int = THREADS) -> torch.Generator:
    """Same seed, same thread count, deterministic kernels: the same weights on the same machine."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def normalize(images: NDArray[np.uint8]) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W), exactly the manifest's preprocessing."""
    scaled = torch.from_numpy(images.astype(np.float32) / np.float32(255.0))
    return ((scaled - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


@dataclass(frozen=True)
class TrainingReport:
    name: str
    epochs: int
    seconds: float
    train_samples: int
    seed: int
    threads: int
    torch_version: str


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
