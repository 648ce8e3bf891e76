"""A real model whose inference raises on some inputs: the failure onnxruntime itself gives, not a mock.

``poisoned`` takes lenet5-mnist's inputs and outputs (1×28×28 grayscale in, 10 logits out) and computes
``logits = mean(pixels) * [0..9] + table[int(first pixel)]`` with a one-entry table. A digit (black
corner, ``int`` of the normalized pixel is 0) runs; an image whose top-left pixel is white (2 after
normalization) makes onnxruntime's ``Gather`` raise "indices element out of data bounds".
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from tests.service.conftest import REPOSITORY

NAME = "poisoned"


def graph_bytes() -> bytes:
    nodes = [
        helper.make_node("Reshape", ["images", "flat_shape"], ["flat"]),
        helper.make_node("Gather", ["flat", "zero"], ["first"], axis=1),
        helper.make_node("Cast", ["first"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["picked"], axis=0),
        helper.make_node("Unsqueeze", ["picked", "one_axis"], ["offset"]),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["mean", "weights"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["logits"]),
    ]
    initializers = [
        numpy_helper.from_array(np.asarray([0, -1], np.int64), "flat_shape"),
        numpy_helper.from_array(np.asarray(0, np.int64), "zero"),
        numpy_helper.from_array(np.asarray([1.0], np.float32), "table"),
        numpy_helper.from_array(np.asarray([1], np.int64), "one_axis"),
        numpy_helper.from_array(np.arange(10, dtype=np.float32)[None, :], "weights"),
    ]
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_repository(root: Path) -> Path:
    """``root`` holding lenet5-mnist (a good model beside it) and ``poisoned``; returns ``root``."""
    shutil.copytree(REPOSITORY / "lenet5-mnist", root / "lenet5-mnist")
    target = root / NAME / "1"
    target.mkdir(parents=True)
    onnx_bytes = graph_bytes()
    (target / "model.onnx").write_bytes(onnx_bytes)
    manifest = json.loads((REPOSITORY / "lenet5-mnist" / "1" / "manifest.json").read_text())
    manifest.update(
        name=NAME,
        description="a test model whose inference raises on images with a white top-left pixel",
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        evaluations=[],
    )
    (target / "manifest.json").write_text(json.dumps(manifest))
    return root


def poison_png() -> bytes:
    """A black 28×28 PNG with a white top-left pixel: this model's inference raises on it."""
    image = Image.new("L", (28, 28), 0)
    image.putpixel((0, 0), 255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
