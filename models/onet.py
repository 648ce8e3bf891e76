"""MTCNN's output network (ONet), written here so a pretrained state dict loads without its package.

The layer names, shapes and the channels-last flatten follow facenet-pytorch 2.6.0's ``ONet`` (MIT) so its
``facenet_pytorch/data/onet.pt`` loads with ``strict=True``. The weights themselves were converted by
facenet-pytorch from the original MTCNN (Zhang et al., 2016) Caffe release.

Input: (N, 3, 48, 48) RGB faces normalized as ``(pixel - 127.5) / 128``.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import torch
from torch import Tensor, nn

from poolserve.models.roi import RoIAlign

ONET_INPUT_SIZE = 48
ONET_FEATURE_DIM = 256
ONET_LABELS = ("no-face", "face")
# The normalization MTCNN was trained with: (x - 127.5) * 0.0078125.
ONET_MEAN = 127.5
ONET_STD = 128.0


class ONetOutputs(NamedTuple):
    """One row per face crop. ``scores`` are softmax probabilities over ``ONET_LABELS``."""

    scores: Tensor  # (N, 2)
    features: Tensor  # (N, 256): dense5 after its PReLU, the layer every head reads
    box_regression: Tensor  # (N, 4): offsets of x1, y1, x2, y2 as fractions of the box's width/height
    landmarks: Tensor  # (N, 10): 5 x-coordinates then 5 y-coordinates, fractions of the box


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, ONET_FEATURE_DIM)
        self.prelu5 = nn.PReLU(ONET_FEATURE_DIM)
        self.dense6_1 = nn.Linear(ONET_FEATURE_DIM, 2)
        self.dense6_2 = nn.Linear(ONET_FEATURE_DIM, 4)
        self.dense6_3 = nn.Linear(ONET_FEATURE_DIM, 10)

    def forward(self, x: Tensor) -> ONetOutputs:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        # The Caffe weights flatten in (W, H, C) order; dense5 only matches after this permute.
        x = x.permute(0, 3, 2, 1).contiguous().flatten(1)
        features = self.prelu5(self.dense5(x))
        scores = torch.softmax(self.dense6_1(features), dim=1)
        return ONetOutputs(scores, features, self.dense6_2(features), self.dense6_3(features))


class ONetRegions(nn.Module):
    """ONet applied to boxes of a whole photo: each box is RoIAligned from the normalized photo to 48×48.

    ``forward(images (N, 3, H, W), boxes (K, 4), box_batch_indices (K,))`` returns ONetOutputs with K rows.
    Boxes are ``x1, y1, x2, y2`` in the photo's pixels (spatial_scale 1: no backbone stride). Normalizing
    before the crop is the same as after it, since RoIAlign is a weighted average with weights summing
    to 1 for boxes inside the photo. The adaptive sampling ratio (ceil(box / 48) samples per bin and
    axis) averages over each bin, as MTCNN's own area resize does.
    """

    def __init__(self, onet: ONet, aligned: bool = True, sampling_ratio: int = -1) -> None:
        super().__init__()
        size = (ONET_INPUT_SIZE, ONET_INPUT_SIZE)
        self.roi = RoIAlign(size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=aligned)
        self.onet = onet

    def forward(self, images: Tensor, boxes: Tensor, box_batch_indices: Tensor) -> ONetOutputs:
        return self.onet(self.roi(images, boxes, box_batch_indices))


def load_onet(state_dict_bytes: bytes) -> ONet:
    """An eval-mode ONet from facenet-pytorch's ``onet.pt`` bytes (tensors only: ``weights_only=True``)."""
    state = torch.load(io.BytesIO(state_dict_bytes), map_location="cpu", weights_only=True)
    model = ONet()
    model.load_state_dict(state, strict=True)
    return model.eval()
