"""Every pooling parameter, exported alone: faithful configurations match PyTorch in onnxruntime (values,
indices and declared shapes); the others are refused, naming the layer, the parameter and the reason."""

from __future__ import annotations

import io
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from export.onnx_export import GraphSignature, export_onnx
from export.pooling_support import UnsupportedPoolingError
from export.verify import check_graph, compare

pytestmark = pytest.mark.parity

SIZES = [(7, 7), (8, 5)]  # odd, and mixed
BATCHES = (1, 2, 7)


class Standalone(nn.Module):
    """One pooling layer under the module path ``pool``; returns indices when the layer does."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.pool = pool

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.pool(images)


@dataclass(frozen=True)
class Case:
    pool: nn.Module
    size: tuple[int, int]
    refusal: str | None  # the parameter the refusal must name, or None when it must export faithfully

    def id(self) -> str:
        return f"{self.pool!r}-{self.size[0]}x{self.size[1]}".replace(" ", "")


def _torch_ceil_drops(size: int, kernel: int, stride: int, padding: int, dilation: int) -> bool:
    """Independent of export.pooling_support: does PyTorch's output size differ from the naive ceil?"""
    naive = math.ceil((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
    actual = nn.functional.max_pool2d(
        torch.zeros(1, 1, size, size), kernel, stride, padding, dilation, ceil_mode=True
    ).shape[-1]
    return actual != naive


def _windowed_cases() -> list[Case]:
    cases = []
    for kind, kernel, stride, padding, dilation, ceil, size in itertools.product(
        ("max", "avg"), (1, 2, 3), (1, 2, 3), (0, 1), (1, 2), (False, True), SIZES
    ):
        if padding > kernel // 2 or (kind == "avg" and dilation > 1):
            continue
        drops = ceil and any(_torch_ceil_drops(s, kernel, stride, padding, dilation) for s in size)
        refusal = "ceil_mode" if drops else None
        if kind == "max":
            for indices in (False, True):
                pool: nn.Module = nn.MaxPool2d(
                    kernel, stride, padding, dilation, return_indices=indices, ceil_mode=ceil
                )
                cases.append(Case(pool, size, refusal))
        else:
            for include_pad, divisor in itertools.product((False, True), (None, 3)):
                pool = nn.AvgPool2d(kernel, stride, padding, ceil, include_pad, divisor)
                cases.append(Case(pool, size, "divisor_override" if divisor else refusal))
    return cases


def _adaptive_cases() -> list[Case]:
    cases = []
    for cls, output, size in itertools.product(
        (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d), (1, 2, (3, 2), (None, 1)), [(6, 8), (7, 7), (9, 4)]
    ):
        out: tuple[int | None, int | None] = (output, output) if isinstance(output, int) else output  # type: ignore[assignment]
        divisible = all(o is not None and (o == 1 or s % o == 0) for s, o in zip(size, out, strict=True))
        cases.append(Case(cls(output), size, None if divisible else "output_size"))
    return cases


CASES = _windowed_cases() + _adaptive_cases()


def _signature(indices: bool) -> GraphSignature:
    outputs = ["values", "indices"] if indices else ["values"]
    return GraphSignature(inputs=["images"], outputs=outputs, dynamic_axes={"images": {0: "batch"}})


@pytest.mark.parametrize("case", CASES, ids=Case.id)
def test_pooling_exports_faithfully_or_is_refused(case: Case):
    model = Standalone(case.pool).eval()
    rng = np.random.default_rng(0)
    example = torch.from_numpy(rng.standard_normal((2, 3, *case.size)).astype(np.float32))
    signature = _signature(getattr(case.pool, "return_indices", False))
    if case.refusal is not None:
        with pytest.raises(UnsupportedPoolingError) as refused:
            export_onnx(model, (example,), signature)
        assert refused.value.module_path == "pool"
        assert case.refusal in refused.value.parameter
        assert refused.value.reason
        return
    proto = export_onnx(model, (example,), signature)
    check_graph(proto)
    # Ties included: a quantized input makes equal maxima common, so index parity is a real check.
    cases = [{"images": rng.standard_normal((b, 3, *case.size)).astype(np.float32)} for b in BATCHES]
    cases.append({"images": rng.integers(0, 3, (2, 3, *case.size)).astype(np.float32)})
    # A pooling layer alone on unit-scale inputs: max pools are exact, averages differ by float32 rounding
    # of a sum of at most a window's values (near 1e-7 on any ISA); a wrong window or pad moves outputs by ~1.
    result = compare(proto, model, cases, tolerance=1e-5)
    assert result.max_abs_error <= 1e-5


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
    ],
    ids=["ceil-max", "ceil-avg", "divisor"],
)
def test_what_is_refused_really_exports_wrong(pool: nn.Module, size: int):
    """The reason for each refusal, demonstrated: exported without our check, the graph lies."""
    example = torch.randn(1, 1, size, size)
    proto = _unchecked_export(Standalone(pool).eval(), example)
    want = pool(example).numpy()
    declared = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    from export.verify import session_for

    with warnings.catch_warnings():
        (got,) = session_for(proto).run(None, {"images": example.numpy()})
    wrong_shape = declared != list(want.shape)
    wrong_values = got.shape != want.shape or not np.allclose(got, want, atol=1e-5)
    assert wrong_shape or wrong_values
