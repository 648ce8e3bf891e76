"""Torch twins of the ONNX models, for the naive baseline: the project's (or the bench's) module definition
with its weights read back from the ONNX initializers, so both services compute the same function.

The exporter (``dynamo=False``) keeps parameter names as initializer names; a candidate definition is
accepted only if every state-dict entry matches an initializer by name and shape and its outputs agree
with onnxruntime on a random batch. The bench's own ResNet is rebuilt from its seed instead: the
exporter folds its BatchNorms into the convolutions, so its initializers no longer match by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bench.targets.common import ServedModel, make_session

PARITY_TOLERANCE = 1e-3


def _candidates(served: ServedModel) -> list[Callable[[], nn.Module]]:
    from poolserve.models.lenet import LeNet5, LeNet5GAP
    from poolserve.models.pooling import PoolingConfig

    classes = len(served.manifest["labels"])
    size = int(served.manifest["preprocessing"]["height"])
    found: list[Callable[[], nn.Module]] = []
    for kind in ("max", "avg"):
        for kernel in (2, 3):
            for ceil in (False, True):
                cfg = PoolingConfig(kind=kind, kernel_size=kernel, ceil_mode=ceil)
                found.append(functools.partial(LeNet5, cfg, num_classes=classes, image_size=size))
                found.append(functools.partial(LeNet5GAP, cfg, num_classes=classes))
    return found


def _initializers(served: ServedModel) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(served.model_path)).graph
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def torch_module_for(served: ServedModel) -> nn.Module:
    """The first candidate whose weights load from the ONNX file and whose outputs match onnxruntime."""
    weights = _initializers(served)
    session = make_session(served.model_path)
    spec = served.manifest["preprocessing"]
    channels = 1 if spec["color_mode"] == "L" else 3
    probe = np.random.default_rng(0).standard_normal((2, channels, spec["height"], spec["width"]))
    probe = probe.astype(np.float32)
    (expected,) = session.run([served.output_name], {served.input_name: probe})

    def agrees(model: nn.Module) -> bool:
        with torch.inference_mode():
            got = model(torch.from_numpy(probe)).numpy()
        return got.shape == expected.shape and float(np.abs(got - expected).max()) <= PARITY_TOLERANCE

    if served.name.startswith("resnet18"):
        from bench.resnet import build_model

        resnet = build_model()
        if agrees(resnet):
            return resnet
    for build in _candidates(served):
        model = build().eval()
        state = model.state_dict()
        if any(k not in weights or weights[k].shape != tuple(v.shape) for k, v in state.items()):
            continue
        model.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in state})
        if agrees(model):
            return model
    raise RuntimeError(f"no torch definition reproduces {served.model_path}; naive baseline unavailable")
