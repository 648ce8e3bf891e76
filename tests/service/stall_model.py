"""A classification model that never returns on a bright image: for tests of the inference watchdog.

The graph is LeNet-shaped on the outside (``images`` (N, 1, 28, 28) -> ``logits`` (N, 10)) and runs an
ONNX ``Loop`` inside whose trip count is 0 for a dark image and 10^15 for one whose brightest pixel is
white: a native op that spins inside onnxruntime for days, which nothing in Python can interrupt.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from poolserve.repository.store import sha256_file
from tests.service.conftest import REPOSITORY

NAME = "stall-probe"
SPIN_ITERATIONS = 10**15
# lenet5-mnist's normalization maps white (255) to (1 - 0.1307) / 0.3081 = 2.82 and black to -0.42.
BRIGHT_THRESHOLD = 2.0


def stall_graph() -> onnx.ModelProto:
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
        ],
        "spin",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, []),
        ],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    constants: dict[str, np.ndarray] = {
        "threshold": np.array(BRIGHT_THRESHOLD, np.float32),
        "spin": np.array(SPIN_ITERATIONS, np.int64),
        "no_spin": np.array(0, np.int64),
        "true": np.array(True),
        "zero": np.array(0.0, np.float32),
        "weights": np.zeros((784, 10), np.float32),
        "flat": np.array([-1, 784], np.int64),
    }
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["brightest"], keepdims=0),
        helper.make_node("Greater", ["brightest", "threshold"], ["bright"]),
        helper.make_node("Where", ["bright", "spin", "no_spin"], ["trips"]),
        helper.make_node("Loop", ["trips", "true", "zero"], ["spun"], body=body),
        helper.make_node("Reshape", ["images", "flat"], ["rows"]),
        helper.make_node("MatMul", ["rows", "weights"], ["product"]),
        # The loop's result feeds the output, so no optimizer may drop it.
        helper.make_node("Mul", ["spun", "zero"], ["nothing"]),
        helper.make_node("Add", ["product", "nothing"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_repository(root: Path) -> Path:
    """A repository holding the stall model and the shipped ``lenet5-mnist`` (to show others still serve)."""
    shutil.copytree(REPOSITORY / "lenet5-mnist", root / "lenet5-mnist")
    directory = root / NAME / "1"
    directory.mkdir(parents=True)
    onnx.save(stall_graph(), directory / "model.onnx")
    manifest = json.loads((REPOSITORY / "lenet5-mnist" / "1" / "manifest.json").read_text())
    manifest.update(name=NAME, description="spins forever on a bright image", evaluations=[])
    manifest["sha256"] = sha256_file(directory / "model.onnx")
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return root
