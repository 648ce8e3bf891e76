"""Refusing pooling layers that ONNX (opset 17, TorchScript exporter, onnxruntime) cannot express faithfully.

``divisor_override`` is silently dropped by the exporter; ``ceil_mode`` where PyTorch drops a last window
that would start in the padding gets the right values but a wrong declared shape: exported without this
check, both graphs lie (``tests/export/test_pooling_matrix.py::test_what_is_refused_really_exports_wrong``).
Adaptive pooling with a non-divisible size has no ONNX operator (its bins are uneven) and a decomposition
would be ours to verify. Each is refused before export, naming the layer, the parameter and why; what is
accepted is exported and compared with PyTorch in the same file's matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


class UnsupportedPoolingError(ValueError):
    """A pooling layer whose ONNX export would not match PyTorch."""

    def __init__(self, module_path: str, parameter: str, reason: str):
        self.module_path = module_path or "<root>"
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"pooling layer '{self.module_path}': {parameter}: {reason}")


@dataclass(frozen=True)
class _Seen:
    path: str
    module: nn.Module
    input_hw: tuple[int, int]


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[-1])


def _ceil_drops_last_window(size: int, kernel: int, stride: int, padding: int, dilation: int) -> bool:
    """True when ceil_mode adds a window that PyTorch then drops because it starts in the right padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    naive = math.ceil(span / stride) + 1
    return (naive - 1) * stride >= size + padding


def _check_windowed(seen: _Seen) -> None:
    module = seen.module
    assert isinstance(module, nn.MaxPool2d | nn.AvgPool2d)
    if isinstance(module, nn.AvgPool2d) and module.divisor_override is not None:
        raise UnsupportedPoolingError(
            seen.path,
            f"divisor_override={module.divisor_override}",
            "ONNX AveragePool has no divisor; the exporter silently drops it and the model would be wrong",
        )
    if not module.ceil_mode:
        return
    kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
    padding = _pair(module.padding)
    dilation = _pair(module.dilation) if isinstance(module, nn.MaxPool2d) else (1, 1)
    for axis, size in enumerate(seen.input_hw):
        if _ceil_drops_last_window(size, kernel[axis], stride[axis], padding[axis], dilation[axis]):
            raise UnsupportedPoolingError(
                seen.path,
                "ceil_mode=True",
                f"at input size {seen.input_hw} PyTorch drops the last window (it would start in "
                "the padding); values export correctly but ONNX declares the larger output shape",
            )


def _check_adaptive(seen: _Seen) -> None:
    module = seen.module
    assert isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d)
    requested = module.output_size
    outputs = (requested, requested) if isinstance(requested, int) or requested is None else tuple(requested)
    if any(out is None for out in outputs):
        raise UnsupportedPoolingError(
            seen.path,
            f"output_size={requested}",
            "None (keep the input size) makes the exporter read the input size at run time, which it cannot",
        )
    for axis, (size, out) in enumerate(zip(seen.input_hw, outputs, strict=True)):
        assert out is not None  # None was refused above
        if out != 1 and size % out != 0:
            raise UnsupportedPoolingError(
                seen.path,
                f"output_size={requested}",
                f"input size {size} (axis {axis + 2}) is not divisible by {out}; ONNX has no adaptive "
                "pooling and the exporter cannot express uneven bins",
            )
    if isinstance(module, nn.AdaptiveMaxPool2d) and module.return_indices:
        raise UnsupportedPoolingError(
            seen.path, "return_indices=True", "adaptive max pooling indices do not export"
        )


def check_pooling(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> None:
    """Run ``model`` once to learn each pooling layer's input size, then refuse what would not export.

    Raises :class:`UnsupportedPoolingError` for the first offending layer, in module order.
    """
    seen: list[_Seen] = []
    pooling_types = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)

    def record(path: str) -> object:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            seen.append(_Seen(path, module, (int(args[0].shape[-2]), int(args[0].shape[-1]))))

        return hook

    handles = [
        module.register_forward_pre_hook(record(path))  # type: ignore[arg-type]
        for path, module in model.named_modules()
        if isinstance(module, pooling_types)
    ]
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    for item in seen:
        if isinstance(item.module, nn.MaxPool2d | nn.AvgPool2d):
            _check_windowed(item)
        else:
            _check_adaptive(item)
