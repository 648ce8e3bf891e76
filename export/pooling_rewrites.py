"""Exact ONNX-exportable forms of the pooling calls whose direct export would not match PyTorch.

Each function takes the call's parameters at a fixed input size (the export's spatial size is fixed;
only the batch axis is dynamic) and computes, in eager PyTorch, exactly what the original call computes,
using only operations the TorchScript exporter maps faithfully: padding, slicing, AveragePool without
padding or ceil_mode, ReduceMean / ReduceMax, elementwise arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape``; under ceil_mode a window starting in the padding is dropped."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def ceil_drops_last_window(size: int, kernel: int, stride: int, padding: int, dilation: int) -> bool:
    """True when ceil_mode adds a window that PyTorch then drops: ONNX would declare one more output."""
    naive = math.ceil((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
    return output_size(size, kernel, stride, padding, dilation, True) != naive


def _avg_divisors(
    size: int, kernel: int, stride: int, padding: int, out: int, include_pad: bool
) -> list[int]:
    """PyTorch's divisor per output position along one axis (its avg_pool kernel's ``pool_size``)."""
    divisors = []
    for index in range(out):
        start = index * stride - padding
        end = min(start + kernel, size + padding)
        if include_pad:
            divisors.append(end - start)
        else:
            divisors.append(min(end, size) - max(start, 0))
    return divisors


def window_average(
    x: Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Tensor:
    """``avg_poolNd`` computed as window sums over an explicitly zero-padded input, divided by PyTorch's
    own divisor (``divisor_override``, or its per-position count) held as a constant."""
    dims = len(kernel)
    sizes = [int(s) for s in x.shape[-dims:]]
    outs = [
        output_size(n, k, s, p, 1, ceil_mode)
        for n, k, s, p in zip(sizes, kernel, stride, padding, strict=True)
    ]
    # Pad left by the padding and right so that exactly ``out`` unpadded windows fit; crop when fewer do.
    pads: list[int] = []
    crop: list[Any] = []
    for n, k, s, p, o in zip(sizes, kernel, stride, padding, outs, strict=True):
        right = (o - 1) * s + k - n - p
        crop.append(slice(0, n + min(right, 0)))
        pads = [p, max(right, 0), *pads]  # F.pad lists the last axis first
    x = x[tuple([..., *crop])]
    padded = F.pad(x, pads)
    sums = _AVG_POOL[dims](padded, tuple(kernel), tuple(stride)) * float(math.prod(kernel))
    if divisor_override is not None:
        return sums / float(divisor_override)
    divisor = torch.ones((), dtype=x.dtype)
    for axis, (n, k, s, p, o) in enumerate(zip(sizes, kernel, stride, padding, outs, strict=True)):
        counts = torch.tensor(_avg_divisors(n, k, s, p, o, count_include_pad), dtype=x.dtype)
        divisor = divisor * counts.reshape([o] + [1] * (dims - 1 - axis))
    return sums / divisor


def adaptive_bins(x: Tensor, outputs: Sequence[int], reduce: str) -> Tensor:
    """Adaptive pooling as one slice + reduction per bin and axis; PyTorch's bins are
    ``floor(i * n / out) .. ceil((i + 1) * n / out)`` and a rectangle's mean (or max) is the mean (max)
    of its rows' means (maxima), so reducing axis by axis is exact."""
    dims = len(outputs)
    for axis, out in enumerate(outputs):
        dim = x.dim() - dims + axis
        size = int(x.shape[dim])
        pieces = []
        for index in range(out):
            start, end = (index * size) // out, -(-((index + 1) * size) // out)
            part = x.narrow(dim, start, end - start)
            pieces.append(part.mean(dim, keepdim=True) if reduce == "mean" else part.amax(dim, keepdim=True))
        x = torch.cat(pieces, dim)
    return x


def unpool(x: Tensor, indices: Tensor, outputs: Sequence[int]) -> Tensor:
    """``max_unpoolNd``: zeros with each value scattered to its (per-plane, flattened) index."""
    dims = len(outputs)
    lead = x.shape[:-dims]
    flat = x.new_zeros((*lead, math.prod(outputs)))
    flat = flat.scatter(-1, indices.flatten(-dims), x.flatten(-dims))
    return flat.reshape(*lead, *outputs)


def crop_to(outputs: Tensor | tuple[Tensor, ...], dims: int) -> Tensor | tuple[Tensor, ...]:
    """Slice each output to its own (PyTorch's) spatial size: a no-op in eager mode, but in the graph it
    makes the declared shape the computed one where ONNX's ceil_mode rule declares one window more."""

    def crop(tensor: Tensor) -> Tensor:
        index: tuple[Any, ...] = (..., *[slice(0, int(n)) for n in tensor.shape[-dims:]])
        return tensor[index]

    if isinstance(outputs, tuple):
        return tuple(crop(t) for t in outputs)
    return crop(outputs)
