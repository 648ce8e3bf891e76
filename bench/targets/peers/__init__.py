"""Servers built on the established serving frameworks, each run from its own virtualenv
(``.bench-venvs/<peer>``), each serving the same ONNX file through onnxruntime with its own batching
set to the model manifest's ``max_batch_size`` / ``max_queue_delay_ms``, as poolserve uses them."""
