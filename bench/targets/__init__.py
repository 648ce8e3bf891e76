"""The servers the benchmark compares poolserve with. Each module here is started as its own process,
some inside a peer's own virtualenv, so they import only numpy, Pillow, onnxruntime and their framework."""
