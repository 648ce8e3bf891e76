"""torch -> ONNX with the TorchScript exporter (``dynamo=False``) at opset 17.

Why this exporter: it is much faster per export than dynamo (docs/models.md gives the figures of
``python -m bench.export_cost``), which is what lets the test suite export hundreds of pooling
configurations (``tests/export/test_pooling_matrix.py``); and dynamo asked for
opset 17 may write another opset, which :func:`export_onnx` refuses whichever exporter wrote it. Opset 17
because the RoI ops need >= 16 and onnxruntime 1.32 has no RoiAlign/MaxRoiPool kernel at opset 22+.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import onnx
import onnxruntime as ort
import torch
from torch import nn

from poolserve.export.pooling_rules import UnsupportedPoolingError
from poolserve.export.pooling_trace import audit_pooling, audited
from poolserve.export.roi_symbolics import register_roi_symbolics
from poolserve.repository.manifest import PoolingLayer, Provenance

OPSET = 17
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False)"


class ExportError(RuntimeError):
    """The exported graph is not what we asked for (opset, shapes, parity)."""


@dataclass(frozen=True)
class GraphSignature:
    """Names and dynamic axes of a model's ONNX inputs and outputs."""

    inputs: list[str]
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


CLASSIFIER_SIGNATURE = GraphSignature(
    inputs=["images"], outputs=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}
)
REGION_SIGNATURE = GraphSignature(
    inputs=["images", "boxes", "box_batch_indices"],
    outputs=["features", "logits"],
    dynamic_axes={
        "images": {0: "batch"},
        "boxes": {0: "boxes"},
        "box_batch_indices": {0: "boxes"},
        "features": {0: "boxes"},
        "logits": {0: "boxes"},
    },
)


def _refuse_rewrites_at_dynamic_sizes(layers: list[PoolingLayer], signature: GraphSignature) -> None:
    """Rewrites are exact for the input size they were traced at; a graph whose spatial axes are dynamic
    would apply them to other sizes."""
    dynamic = [
        name for name in signature.inputs if any(axis >= 2 for axis in signature.dynamic_axes.get(name, {}))
    ]
    rewritten = [layer for layer in layers if layer.export == "rewritten"]
    if dynamic and rewritten:
        first = rewritten[0]
        raise UnsupportedPoolingError(
            first.path,
            first.op,
            f"rewritten exactly for input {first.input_shape} only, but input {dynamic[0]!r} declares "
            "dynamic spatial axes; export at a fixed spatial size",
        )


def export_onnx(
    model: nn.Module, example_inputs: tuple[torch.Tensor, ...], signature: GraphSignature, opset: int = OPSET
) -> onnx.ModelProto:
    """Audit pooling (refusing what has no exact form), export, and check the opset actually written."""
    return export_audited(model, example_inputs, signature, opset)[0]


def export_audited(
    model: nn.Module, example_inputs: tuple[torch.Tensor, ...], signature: GraphSignature, opset: int = OPSET
) -> tuple[onnx.ModelProto, list[PoolingLayer]]:
    """:func:`export_onnx` that also returns the pooling audit: each call, native or rewritten."""
    model.eval()
    layers = audit_pooling(model, example_inputs)  # refusals raise here, before the exporter runs
    _refuse_rewrites_at_dynamic_sizes(layers, signature)
    register_roi_symbolics(opset)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo; we choose it on purpose (see above).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        with audited(model, rewrite=True) as audit, _stdout_silenced():
            torch.onnx.export(
                model,
                example_inputs,
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=opset,
                input_names=signature.inputs,
                output_names=signature.outputs,
                dynamic_axes=signature.dynamic_axes,
                do_constant_folding=True,
            )
    proto = onnx.load_from_string(buffer.getvalue())
    written = {entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")}
    if written != {opset}:
        raise ExportError(f"asked for opset {opset}, the exporter wrote {sorted(written)}")
    return proto, audit.layers


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """The process's standard output (file descriptor 1) discarded meanwhile: when an export fails, the
    TorchScript exporter's C++ logger prints the whole graph there (its log switch stays on whatever one
    asks), burying the one line that says what failed; the exception still carries it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            try:
                yield
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
    finally:
        os.close(saved)


def export_provenance(
    source: Literal["trained", "converted"], description: str, license: str, weights_origin: str
) -> Provenance:
    """Provenance of a graph :func:`export_onnx` wrote: exporter, opset and library versions filled in."""
    return Provenance(
        source=source,
        description=description,
        license=license,
        weights_origin=weights_origin,
        exporter=EXPORTER,
        opset=OPSET,
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
        onnxruntime_version=ort.__version__,
    )
