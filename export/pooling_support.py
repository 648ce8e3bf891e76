"""Refusing pooling layers that ONNX (opset 17, TorchScript exporter, onnxruntime) cannot express faithfully.

Measured in /work/shared/pooling-export-facts.md: ``divisor_override`` is silently dropped by the
exporter; adaptive pooling with a non-divisible size fails or needs a decomposition we have not verified;
``ceil_mode`` where PyTorch drops a last window that would start in the padding gets the right values but
a wrong declared shape. Each is refused before export, naming the layer, the parameter and why.
"""

from __future__ import annotations


class UnsupportedPoolingError(ValueError):
    """A pooling layer whose ONNX export would not match PyTorch."""

    def __init__(self, module_path: str, parameter: str, reason: str):
        self.module_path = module_path or "<root>"
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"pooling layer '{self.module_path}': {parameter}: {reason}")
