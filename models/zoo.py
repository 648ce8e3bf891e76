"""The shipped default models: how each is built, what it takes as input and how it is trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from poolserve.models.canvas import CANVAS_SIZE
from poolserve.models.lenet import LeNet5, LeNet5GAP
from poolserve.models.mnist import IMAGE_SIZE
from poolserve.models.pooling import PoolingConfig
from poolserve.models.region_model import RegionModel, region_labels

DIGIT_LABELS = [str(d) for d in range(10)]
GAP_CHANNELS = (24, 48, 96)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: Literal["classification", "region-features"]
    description: str
    input_size: int
    labels: list[str]
    epochs: int
    learning_rate: float
    roi_op: Literal["align", "pool"] | None = None
    canvases_per_epoch: int = 0  # region models: fresh training canvases composed per epoch

    def build(self) -> nn.Module:
        if self.name == "lenet5-mnist":
            return LeNet5(PoolingConfig(kind="max", kernel_size=2, stride=2))
        if self.name == "lenet5-gap-mnist":
            return LeNet5GAP(
                PoolingConfig(kind="avg", kernel_size=2, stride=2), channels=GAP_CHANNELS, batch_norm=True
            )
        assert self.roi_op is not None
        return RegionModel(self.roi_op)


SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "lenet5-mnist",
            "classification",
            "LeNet-5 (ReLU, MaxPool2d 2x2/2) classifying 28x28 MNIST digits",
            IMAGE_SIZE,
            DIGIT_LABELS,
            epochs=20,
            learning_rate=2e-3,
        ),
        ModelSpec(
            "lenet5-gap-mnist",
            "classification",
            "LeNet-5 variant with AvgPool2d 2x2/2 and global average pooling instead of flattening",
            IMAGE_SIZE,
            DIGIT_LABELS,
            epochs=15,
            learning_rate=2e-3,
        ),
        ModelSpec(
            "digits-roialign",
            "region-features",
            "Fast R-CNN style region model (RoIAlign 7x7, aligned, sampling_ratio 2) on canvases of digits",
            CANVAS_SIZE,
            region_labels(),
            epochs=10,
            learning_rate=2e-3,
            canvases_per_epoch=1200,
            roi_op="align",
        ),
        ModelSpec(
            "digits-roipool",
            "region-features",
            "Fast R-CNN style region model (RoIPool 7x7) on canvases of MNIST digits",
            CANVAS_SIZE,
            region_labels(),
            epochs=10,
            learning_rate=2e-3,
            canvases_per_epoch=1200,
            roi_op="pool",
        ),
    )
}
