"""Training is reproducible: the same seed gives bit-identical weights (short runs on subsets, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from poolserve.models.mnist import DigitSplit, held_out_split
from poolserve.models.train_classifier import train_classifier
from poolserve.models.train_region import train_region
from poolserve.models.zoo import SPECS


def _assert_identical(first: nn.Module, second: nn.Module) -> None:
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_one_classifier_epoch_twice_gives_identical_weights():
    train = held_out_split().train
    subset = DigitSplit(train.images[::6], train.labels[::6])
    spec = dataclasses.replace(SPECS["lenet5-mnist"], epochs=1)
    first, report = train_classifier(spec, subset)
    second, _ = train_classifier(spec, subset)
    _assert_identical(first, second)
    assert report.train_samples == len(subset)


@pytest.mark.slow
def test_one_region_epoch_twice_gives_identical_weights_and_learns_something():
    train = held_out_split().train
    spec = dataclasses.replace(SPECS["digits-roialign"], epochs=1)
    first, report = train_region(spec, train, canvases_per_epoch=48)
    second, _ = train_region(spec, train, canvases_per_epoch=48)
    _assert_identical(first, second)
    untrained = spec.build()
    changed = [not torch.equal(a, b) for a, b in zip(first.parameters(), untrained.parameters(), strict=True)]
    assert all(changed) and report.train_samples == 48
