"""The LeNet-5 family: conv -> pool -> conv -> pool -> classifier head.

Inputs are normalized 1x28x28 digits (see the manifest's preprocessing); outputs are class logits.
"""

from __future__ import annotations

import torch
from torch import nn

from poolserve.models.pooling import PoolingConfig


def _head(inputs: int, num_classes: int) -> nn.Sequential:
    """LeNet-5's classifier: flatten, then 120 and 84 hidden units."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(inputs, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


class LeNet5(nn.Module):
    """Classic LeNet-5 (ReLU instead of tanh): two 5x5 convs, each followed by ``pooling``, then 3 FC."""

    def __init__(self, pooling: PoolingConfig | None = None, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        pooling = pooling or PoolingConfig(kind="max")
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            pooling.build(),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            pooling.build(),
        )
        with torch.no_grad():
            flat = int(self.features(torch.zeros(1, 1, image_size, image_size)).numel())
        self.classifier = _head(flat, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


class LeNet5GAP(nn.Module):
    """LeNet-5 with wider convs whose last feature map is globally average-pooled instead of flattened.

    ``channels`` are the three convs' widths; ``batch_norm`` puts a BatchNorm2d after each conv (folded
    into the conv's weights at export, so the graph keeps its plain conv -> pool structure).
    """

    def __init__(
        self,
        pooling: PoolingConfig | None = None,
        num_classes: int = 10,
        channels: tuple[int, int, int] = (16, 32, 64),
        batch_norm: bool = False,
    ):
        super().__init__()
        pooling = pooling or PoolingConfig(kind="avg")
        first, second, third = channels

        def conv(inputs: int, outputs: int, kernel: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2)]
            return [*layers, nn.BatchNorm2d(outputs), nn.ReLU()] if batch_norm else [*layers, nn.ReLU()]

        self.features = nn.Sequential(
            *conv(1, first, 5),
            pooling.build(),
            *conv(first, second, 5),
            pooling.build(),
            *conv(second, third, 3),
        )
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = _head(third, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pool(self.features(images)))
