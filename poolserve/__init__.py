"""poolserve: serve pooling CNNs exported to ONNX."""

__version__ = "0.1.0"
