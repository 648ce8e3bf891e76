"""RoI pooling for models you export with poolserve, without torchvision.

Constructor arguments are ``torchvision.ops``' (``RoIAlign(output_size, spatial_scale, sampling_ratio,
aligned)``, ``RoIPool(output_size, spatial_scale)``), and so is ``forward(input, rois)`` with ``rois`` a
(K, 5) tensor of ``[batch_index, x1, y1, x2, y2]`` or a list of (L, 4) tensors, one per image: code written
for torchvision changes one import. ``forward(input, boxes, box_batch_indices)`` takes the service's
region contract directly. Eager results follow torchvision's CPU kernels; export writes ONNX ``RoiAlign``
and ``MaxRoiPool`` nodes.
"""

from __future__ import annotations

from poolserve.models.roi import RoIAlign, RoIPool

__all__ = ["RoIAlign", "RoIPool"]
