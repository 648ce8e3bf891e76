"""The configurable pooling layer of the LeNet family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn


@dataclass(frozen=True)
class PoolingConfig:
    """Every ``nn.MaxPool2d`` / ``nn.AvgPool2d`` parameter; the ones that do not apply to a kind are
    ignored (``dilation``/``return_indices`` for avg; ``count_include_pad``/``divisor_override`` for max)."""

    kind: Literal["max", "avg"] = "max"
    kernel_size: int = 2
    stride: int | None = None
    padding: int = 0
    dilation: int = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    def build(self) -> nn.Module:
        if self.kind == "max":
            return nn.MaxPool2d(
                self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode
            )
        return nn.AvgPool2d(
            self.kernel_size,
            self.stride,
            self.padding,
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
            divisor_override=self.divisor_override,
        )
