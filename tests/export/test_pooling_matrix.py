"""Every pooling configuration of the quick conformance matrix, exported alone: native or rewritten, it
matches PyTorch in onnxruntime (max pooling bit-exact, values and indices; the rest within 1e-6; declared
shapes equal computed ones), and what has no exact form is refused, naming the layer and the reason."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from poolserve.export.conformance import Case, Standalone, matrix, run_case
from poolserve.export.onnx_export import CLASSIFIER_SIGNATURE, GraphSignature, export_audited
from poolserve.export.parity import session_for
from poolserve.export.pooling_rules import UnsupportedPoolingError

pytestmark = pytest.mark.parity

CASES = matrix(full=False)


@pytest.mark.parametrize("case", CASES, ids=Case.id)
def test_pooling_exports_exactly_or_is_refused(case: Case):
    outcome = run_case(case)
    assert outcome.treatment != "wrong", outcome.note
    assert (outcome.treatment == "refused") == case.refused, outcome.note


class _Functional(nn.Module):
    """A functional call inside a submodule's forward: the audit names the submodule."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 2, 1), _AvgByThree())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.block(images), 2, 2, 1, ceil_mode=True).flatten(1)


class _AvgByThree(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 3, 2, divisor_override=3)


def test_functional_calls_are_audited_with_their_module_path():
    _, audit = export_audited(_Functional().eval(), (torch.randn(2, 1, 11, 11),), CLASSIFIER_SIGNATURE)
    assert [(a.path, a.op, a.export) for a in audit] == [
        ("block.1", "F.avg_pool2d", "rewritten"),
        ("<root>", "F.max_pool2d", "rewritten"),  # 5x5: PyTorch drops the window starting in the padding
    ]
    assert audit[0].parameters["divisor_override"] == 3 and audit[0].input_shape == [2, 2, 11, 11]


def test_a_refusal_names_the_layer_and_the_reason():
    model = Standalone(nn.AdaptiveMaxPool2d(3, return_indices=True)).eval()
    signature = GraphSignature(["images"], ["values", "indices"], {"images": {0: "batch"}})
    with pytest.raises(UnsupportedPoolingError) as refused:
        export_audited(model, (torch.randn(1, 2, 7, 7),), signature)
    assert refused.value.module_path == "pool"
    assert "return_indices" in refused.value.parameter
    assert "[7, 7]" in refused.value.reason


def test_rewrites_need_a_fixed_spatial_size():
    model = Standalone(nn.AvgPool2d(2, divisor_override=3)).eval()
    dynamic = GraphSignature(["images"], ["values"], {"images": {0: "batch", 2: "height", 3: "width"}})
    with pytest.raises(UnsupportedPoolingError, match="dynamic spatial axes") as refused:
        export_audited(model, (torch.randn(1, 2, 6, 6),), dynamic)
    assert refused.value.module_path == "pool"
    native = Standalone(nn.AvgPool2d(2)).eval()  # no rewrite: dynamic sizes are fine
    export_audited(native, (torch.randn(1, 2, 6, 6),), dynamic)


def _unchecked_export(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=17,
            input_names=["images"],
        )
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize(
    ("pool", "size"),
    [
        (nn.MaxPool2d(2, 2, 1, ceil_mode=True), 5),
        (nn.AvgPool2d(2, 2, 1, ceil_mode=True), 7),
        (nn.AvgPool2d(3, 2, 0, ceil_mode=True, divisor_override=2), 7),
        (nn.LPPool2d(2.0, 1, 2, ceil_mode=True), 6),
    ],
    ids=["ceil-max", "ceil-avg", "divisor", "lp-ceil"],
)
def test_what_is_rewritten_really_exports_wrong_natively(pool: nn.Module, size: int):
    """The reason for each rewrite, demonstrated: exported without our audit, the graph lies."""
    example = torch.randn(1, 1, size, size)
    proto = _unchecked_export(Standalone(pool).eval(), example)
    want = pool(example).numpy()
    declared = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    with warnings.catch_warnings():
        (got,) = session_for(proto).run(None, {"images": example.numpy()})
    wrong_shape = declared != list(want.shape)
    wrong_values = got.shape != want.shape or not np.allclose(got, want, atol=1e-5)
    assert wrong_shape or wrong_values
