"""The pooling conformance matrix: every configuration exported alone, its treatment, its measured error.

``tests/export/test_pooling_matrix.py`` runs the ``quick`` matrix on every CI run;
``python -m poolserve.export.conformance_report`` runs the full one and writes
``docs/pooling-conformance.md`` and
``export/results/pooling-conformance.json``. Targets: max pooling (values and indices) bit-exact,
everything else within 1e-6 on float32 (relative to the output's magnitude where it exceeds 1: an LPPool
output is a window sum, several times its inputs), declared output shapes equal to the computed ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from poolserve.export.onnx_export import ExportError, GraphSignature, export_audited
from poolserve.export.parity import check_graph, compare
from poolserve.export.pooling_rules import UnsupportedPoolingError

MAX_TARGET = 0.0
AVG_TARGET = 1e-6
BATCHES = (1, 2, 7)


class Standalone(nn.Module):
    """One pooling layer (module ``pool``) or one functional call in ``forward``."""

    def __init__(self, pool: nn.Module | None = None, call: Callable[[torch.Tensor], object] | None = None):
        super().__init__()
        self.pool = pool
        self.call = call

    def forward(self, images: torch.Tensor) -> object:
        if self.pool is not None:
            return self.pool(images)
        assert self.call is not None
        return self.call(images)


@dataclass(frozen=True)
class Case:
    label: str
    build: Callable[[], nn.Module]
    size: tuple[int, ...]  # spatial size
    exact: bool  # max pooling: values (and indices) must be bit-exact
    refused: bool = False  # expected to be refused (no exact form)
    non_negative: bool = False  # LPPool with an odd norm is NaN on negative window sums, in both

    def id(self) -> str:
        return f"{self.label}@{'x'.join(map(str, self.size))}".replace(" ", "")


@dataclass(frozen=True)
class Outcome:
    case: str
    treatment: str  # native | rewritten | refused | wrong
    max_abs_error: float | None
    note: str

    @property
    def within_target(self) -> bool:
        return self.treatment != "wrong"


def describe(pool: nn.Module) -> str:
    """Every constructor parameter (``repr`` leaves out some, such as ``return_indices``)."""
    names = getattr(pool, "__constants__", [])
    return f"{type(pool).__name__}({', '.join(f'{n}={getattr(pool, n)}' for n in names)})"


def _module(pool: nn.Module, size: tuple[int, ...], exact: bool, refused: bool = False) -> Case:
    return Case(
        describe(pool),
        lambda: Standalone(pool),
        size,
        exact,
        refused,
        isinstance(pool, nn.LPPool1d | nn.LPPool2d),
    )


def _functional(
    label: str, call: Callable[[torch.Tensor], object], size: tuple[int, ...], exact: bool
) -> Case:
    return Case(label, lambda: Standalone(call=call), size, exact)


def _windowed_2d(full: bool) -> Iterator[Case]:
    sizes = [(7, 7), (8, 5)] if full else [(7, 7)]
    kernels, strides = ((1, 2, 3), (1, 2, 3)) if full else ((2, 3), (2,))
    for kernel, stride, padding, dilation, ceil, size in itertools.product(
        kernels, strides, (0, 1), (1, 2), (False, True), sizes
    ):
        if padding > kernel // 2:
            continue
        for indices in (False, True) if full else (ceil,):
            yield _module(nn.MaxPool2d(kernel, stride, padding, dilation, indices, ceil), size, True)
        if dilation > 1:
            continue
        for include_pad, divisor in (
            itertools.product((False, True), (None, 3)) if full else [(True, 3), (False, None)]
        ):
            yield _module(nn.AvgPool2d(kernel, stride, padding, ceil, include_pad, divisor), size, False)


def _other_dims(full: bool) -> Iterator[Case]:
    for ceil, padding in itertools.product((False, True), (0, 1)):
        yield _module(nn.MaxPool1d(2, 2, padding, ceil_mode=ceil, return_indices=ceil), (9,), True)
        yield _module(nn.AvgPool1d(2, 2, padding, ceil_mode=ceil), (9,), False)
        yield _module(nn.MaxPool3d(2, 2, padding, ceil_mode=ceil, return_indices=ceil), (5, 4, 5), True)
        yield _module(
            nn.AvgPool3d(2, 2, padding, ceil_mode=ceil, divisor_override=3 if ceil else None),
            (5, 4, 5),
            False,
        )
    for norm, ceil in itertools.product((1.0, 2.0, 3.0) if full else (2.0, 3.0), (False, True)):
        yield _module(nn.LPPool1d(norm, 2, 2, ceil_mode=ceil), (9,), False)
        yield _module(nn.LPPool2d(norm, 3, 2, ceil_mode=ceil), (8, 7), False)
        yield _module(nn.LPPool2d(norm, 1, 2, ceil_mode=ceil), (6, 7), False)  # ceil drops on the 6


def _adaptive(full: bool) -> Iterator[Case]:
    outputs: list[int | tuple[int | None, int | None]] = (
        [1, 2, 3, (3, 2), (None, 1)] if full else [3, (None, 1)]
    )
    sizes = [(6, 8), (7, 7), (9, 4)] if full else [(7, 7)]
    for output, size in itertools.product(outputs, sizes):
        yield _module(nn.AdaptiveAvgPool2d(output), size, False)
        yield _module(nn.AdaptiveMaxPool2d(output), size, True)
        divisible = all(
            o is None or o == 1 or n % o == 0
            for n, o in zip(size, output if isinstance(output, tuple) else (output,) * 2, strict=True)
        )
        yield _module(nn.AdaptiveMaxPool2d(output, return_indices=True), size, True, refused=not divisible)
    yield _module(nn.AdaptiveMaxPool2d((None, 2), return_indices=True), (5, 8), True)
    yield _module(nn.AdaptiveAvgPool1d(4), (10,), False)
    yield _module(nn.AdaptiveMaxPool3d((2, 3, 2)), (5, 7, 4), True)


def _functional_calls() -> Iterator[Case]:
    yield _functional(
        "F.avg_pool2d(x, 3, 2, divisor_override=3)",
        lambda x: F.avg_pool2d(x, 3, 2, divisor_override=3),
        (7, 7),
        False,
    )
    yield _functional(
        "F.max_pool2d(x, 2, 2, 1, ceil_mode=True)",
        lambda x: F.max_pool2d(x, 2, 2, 1, ceil_mode=True),
        (5, 5),
        True,
    )
    yield Case(
        "F.lp_pool2d(x, 3, 2, ceil_mode=True)",
        lambda: Standalone(call=lambda x: F.lp_pool2d(x, 3.0, 2, ceil_mode=True)),
        (7, 7),
        False,
        non_negative=True,
    )
    yield _functional("F.adaptive_avg_pool2d(x, 3)", lambda x: F.adaptive_avg_pool2d(x, 3), (8, 8), False)
    yield _functional(
        "torch.max_pool1d(x, 3, 2, ceil_mode=True)",
        lambda x: torch.max_pool1d(x, 3, 2, ceil_mode=True),
        (8,),
        True,
    )
    unpool = nn.MaxUnpool2d(2, 2)
    yield _functional(
        "MaxUnpool2d(2)(*MaxPool2d(2, return_indices=True)(x))",
        lambda x: unpool(*F.max_pool2d(x, 2, 2, return_indices=True)),
        (6, 6),
        True,
    )
    yield Case(
        "FractionalMaxPool2d(2, output_size=3)",
        lambda: Standalone(nn.FractionalMaxPool2d(2, output_size=3)),
        (7, 7),
        True,
        refused=True,
    )


def matrix(full: bool) -> list[Case]:
    return [*_windowed_2d(full), *_other_dims(full), *_adaptive(full), *_functional_calls()]


def _magnitude(model: nn.Module, inputs: list[dict[str, np.ndarray]]) -> float:
    with torch.no_grad():
        results = [model(torch.from_numpy(case["images"])) for case in inputs]
    values = [r[0] if isinstance(r, tuple) else r for r in results]
    return max(float(v.abs().max()) for v in values if isinstance(v, torch.Tensor) and v.numel())


def run_case(case: Case) -> Outcome:
    """Export one configuration and measure it against PyTorch eager on several batches (ties included)."""
    model = case.build().eval()
    rng = np.random.default_rng(0)

    def draw(batch: int) -> np.ndarray:
        values = rng.standard_normal((batch, 3, *case.size)).astype(np.float32)
        return np.abs(values) if case.non_negative else values

    example = torch.from_numpy(draw(2))
    with torch.no_grad():
        outputs = model(example)
    names = [f"out{i}" for i in range(len(outputs))] if isinstance(outputs, tuple) else ["out0"]
    signature = GraphSignature(["images"], names, {"images": {0: "batch"}} | {n: {0: "batch"} for n in names})
    try:
        proto, audit = export_audited(model, (example,), signature)
    except UnsupportedPoolingError as refused:
        return Outcome(case.id(), "refused", None, f"{refused.parameter}: {refused.reason}")
    treatment = "rewritten" if any(layer.export == "rewritten" for layer in audit) else "native"
    inputs = [{"images": draw(b)} for b in BATCHES]
    inputs.append({"images": rng.integers(0, 3, (2, 3, *case.size)).astype(np.float32)})  # ties
    try:
        check_graph(proto)
        error = compare(proto, model, inputs, tolerance=float("inf")).max_abs_error
    except ExportError as wrong:  # a shape or declared-shape mismatch: must never happen
        return Outcome(case.id(), "wrong", None, str(wrong))
    target = MAX_TARGET if case.exact else AVG_TARGET * max(1.0, _magnitude(model, inputs))
    notes = "; ".join(sorted({layer.note for layer in audit}))
    if error > target:
        return Outcome(case.id(), "wrong", error, f"error {error:.3g} above {target:g}; {notes}")
    return Outcome(case.id(), treatment, error, notes)
