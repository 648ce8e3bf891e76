"""Training is reproducible: the same seed gives bit-identical weights (short runs, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.mnist import DigitSplit, held_out_split
from models.train_classifier import train_classifier
from models.zoo import SPECS


@pytest.mark.slow
def test_one_epoch_twice_gives_identical_weights():
    train = held_out_split().train
    subset = DigitSplit(train.images[:640], train.labels[:640])
    spec = dataclasses.replace(SPECS["lenet5-mnist"], epochs=1)
    first, _ = train_classifier(spec, subset)
    second, _ = train_classifier(spec, subset)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
