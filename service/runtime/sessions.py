"""Creating onnxruntime sessions: one per model, for the app's lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort


@dataclass(frozen=True)
class SessionConfig:
    providers: list[str]
    intra_op_threads: int = 0
    inter_op_threads: int = 0


def create_session(model_path: Path, config: SessionConfig) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    # Each model's batches run one at a time in its own worker thread; parallelism lives inside ops.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(model_path), sess_options=options, providers=config.providers)


def provider_in_use(session: ort.InferenceSession) -> str:
    """The provider onnxruntime actually placed the session on (it silently falls back if CUDA fails)."""
    return str(session.get_providers()[0])
