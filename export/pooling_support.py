"""The error raised for a pooling call that has no exact ONNX form (``poolserve.export.pooling_rules``
decides).

Everything ONNX would get wrong but can express exactly is rewritten instead
(``poolserve.export.pooling_rewrites``); what remains is refused before the exporter runs, naming the
layer's module path, the parameter and why.
"""

from __future__ import annotations


class UnsupportedPoolingError(ValueError):
    """A pooling call whose ONNX export could not match PyTorch."""

    def __init__(self, module_path: str, parameter: str, reason: str):
        self.module_path = module_path or "<root>"
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"pooling layer '{self.module_path}': {parameter}: {reason}")
