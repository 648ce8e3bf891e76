"""poolserve: serve pooling CNNs exported to ONNX."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``from poolserve import export_model`` loads torch only when asked: serving never imports it.
    if name == "export_model":
        from poolserve.export.user_model import export_model

        return export_model
    raise AttributeError(f"module 'poolserve' has no attribute {name!r}")
