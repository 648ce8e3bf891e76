"""A Fast R-CNN shaped region model: backbone -> RoI pooling -> head -> region features and class logits."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from poolserve.models.roi import RoIAlign, RoIPool

BACKBONE_STRIDE = 4
ROI_OUTPUT_SIZE = (7, 7)
FEATURE_DIM = 128
BACKGROUND_LABEL = "background"


def _backbone(channels: int) -> nn.Sequential:
    """Three 3x3 convs, two 2x2 max pools: stride 4."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
    )


class RegionModel(nn.Module):
    """``forward(images, boxes, box_batch_indices) -> (features (K, D), logits (K, classes))``.

    ``boxes`` are ``x1, y1, x2, y2`` in the input image's pixels; the RoI layer scales them by
    ``1 / BACKBONE_STRIDE``.
    """

    def __init__(
        self,
        roi_op: Literal["align", "pool"],
        num_classes: int = 11,
        channels: int = 32,
        feature_dim: int = FEATURE_DIM,
        sampling_ratio: int = 2,
        aligned: bool = True,
    ):
        super().__init__()
        self.backbone = _backbone(channels)
        scale = 1.0 / BACKBONE_STRIDE
        self.roi: RoIAlign | RoIPool = (
            RoIAlign(ROI_OUTPUT_SIZE, scale, sampling_ratio, aligned)
            if roi_op == "align"
            else RoIPool(ROI_OUTPUT_SIZE, scale)
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * ROI_OUTPUT_SIZE[0] * ROI_OUTPUT_SIZE[1], 256),
            nn.ReLU(),
            nn.Linear(256, feature_dim),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, images: Tensor, boxes: Tensor, box_batch_indices: Tensor) -> tuple[Tensor, Tensor]:
        regions = self.roi(self.backbone(images), boxes, box_batch_indices)
        features = self.head(regions)
        return features, self.classifier(features)


def region_labels() -> list[str]:
    return [str(d) for d in range(10)] + [BACKGROUND_LABEL]
