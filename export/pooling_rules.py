"""What export does with one pooling call, given its parameters and its concrete input shape.

The rules follow measurements (the conformance matrix in ``poolserve.export.conformance`` re-measures every
one):
the TorchScript exporter at opset 17 maps most pooling faithfully to ONNX; ``divisor_override`` is
silently dropped, non-divisible adaptive pooling does not export, ``ceil_mode`` with a dropped last window
declares a wrong output shape (``MaxPool``, ``AvgPool`` and ``LPPool`` alike) and ``MaxUnpool`` does not
trace. Those are rewritten exactly; only what has no exact form here is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor

from poolserve.export.pooling_rewrites import (
    adaptive_bins,
    ceil_drops_last_window,
    crop_to,
    unpool,
    window_average,
)

Treatment = Literal["native", "rewritten", "refused"]
# (input, the original call) -> the replacement's output
Replacement = Callable[[Tensor, Callable[[], Any]], Any]


class UnsupportedPoolingError(ValueError):
    """A pooling call whose ONNX export could not match PyTorch: the layer's module path, the parameter
    and why, raised before the exporter runs."""

    def __init__(self, module_path: str, parameter: str, reason: str):
        self.module_path = module_path or "<root>"
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"pooling layer '{self.module_path}': {parameter}: {reason}")


@dataclass(frozen=True)
class Decision:
    treatment: Treatment
    note: str
    parameter: str = ""  # for refusals: the parameter that causes it
    replacement: Replacement | None = None


def _per_axis(value: Any, dims: int) -> list[int]:
    if isinstance(value, int):
        return [value] * dims
    values = [int(v) for v in value]
    return values * dims if len(values) == 1 else values


def _windows(params: dict[str, Any], dims: int) -> tuple[list[int], list[int], list[int]]:
    kernel = _per_axis(params["kernel_size"], dims)
    stride = params.get("stride")
    strides = kernel if stride is None or stride == [] or stride == () else _per_axis(stride, dims)
    return kernel, strides, _per_axis(params.get("padding", 0), dims)


def _drops(
    sizes: list[int], kernel: list[int], stride: list[int], padding: list[int], dilation: list[int]
) -> bool:
    return any(
        ceil_drops_last_window(n, k, s, p, d)
        for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation, strict=True)
    )


def _cropped(op: str, dims: int) -> Decision:
    return Decision(
        "rewritten",
        f"ceil_mode drops PyTorch's last window here: {op}, then sliced to PyTorch's output shape",
        replacement=lambda x, native: crop_to(native(), dims),
    )


def _max(params: dict[str, Any], dims: int, sizes: list[int]) -> Decision:
    kernel, stride, padding = _windows(params, dims)
    dilation = _per_axis(params.get("dilation", 1), dims)
    if params.get("ceil_mode") and _drops(sizes, kernel, stride, padding, dilation):
        return _cropped("MaxPool", dims)
    return Decision("native", "ONNX MaxPool")


def _avg(params: dict[str, Any], dims: int, sizes: list[int]) -> Decision:
    kernel, stride, padding = _windows(params, dims)
    ceil_mode = bool(params.get("ceil_mode", False))
    divisor = params.get("divisor_override")
    if divisor is not None:
        average = partial(
            window_average,
            kernel=kernel,
            stride=stride,
            padding=padding,
            ceil_mode=ceil_mode,
            count_include_pad=True,
            divisor_override=int(divisor),
        )
        return Decision(
            "rewritten",
            f"divisor_override={divisor}: window sums (zero padding, AveragePool x kernel size) / {divisor}",
            replacement=lambda x, native: average(x),
        )
    if ceil_mode and _drops(sizes, kernel, stride, padding, [1] * dims):
        return _cropped("AveragePool", dims)
    return Decision("native", "ONNX AveragePool")


def _lp(params: dict[str, Any], dims: int, sizes: list[int]) -> Decision:
    kernel, stride, _ = _windows(params, dims)
    if params.get("ceil_mode") and _drops(sizes, kernel, stride, [0] * dims, [1] * dims):
        return _cropped("the exporter's decomposition", dims)
    return Decision("native", "exporter's decomposition: Pow, AveragePool, Mul, Pow")


def _adaptive(kind: str, params: dict[str, Any], dims: int, sizes: list[int]) -> Decision:
    requested = params["output_size"]
    raw = [requested] * dims if requested is None or isinstance(requested, int) else list(requested)
    raw = raw * dims if len(raw) == 1 else raw
    outputs = [n if o is None else int(o) for n, o in zip(sizes, raw, strict=True)]
    if all(o == 1 or n % o == 0 for n, o in zip(sizes, outputs, strict=True)):
        if None not in raw:
            return Decision(
                "native", "output divides the input: ONNX pooling, kernel = stride = input / output"
            )
        pool = getattr(F, f"{kind}_pool{dims}d")
        extra = {"return_indices": bool(params.get("return_indices"))} if kind == "adaptive_max" else {}
        return Decision(
            "rewritten",
            f"output_size None resolved to the fixed input size {sizes}; then native ONNX pooling",
            replacement=lambda x, native: pool(x, outputs, **extra),
        )
    if kind == "adaptive_max" and params.get("return_indices"):
        return Decision(
            "refused",
            f"uneven bins at input {sizes}: the values have an exact form, their indices have none here",
            parameter="return_indices=True",
        )
    reduce = "mean" if kind == "adaptive_avg" else "max"
    return Decision(
        "rewritten",
        f"uneven bins at the fixed input size {sizes}: one slice + Reduce{reduce.title()} per bin and axis",
        replacement=lambda x, native: adaptive_bins(x, outputs, reduce),
    )


def _unpool(params: dict[str, Any], dims: int, sizes: list[int]) -> Decision:
    kernel, stride, padding = _windows(params, dims)
    requested = params.get("output_size")
    if requested is not None:
        outputs = [int(n) for n in list(requested)[-dims:]]
    else:
        outputs = [(n - 1) * s - 2 * p + k for n, s, p, k in zip(sizes, stride, padding, kernel, strict=True)]
    indices = params["indices"]
    return Decision(
        "rewritten",
        "the exporter cannot trace MaxUnpool's size check: values scattered to their indices (Scatter)",
        replacement=lambda x, native: unpool(x, indices, outputs),
    )


def decide(kind: str, dims: int, params: dict[str, Any], shape: list[int]) -> Decision:
    """``kind`` is one of max, avg, lp, adaptive_avg, adaptive_max, unpool, fractional."""
    sizes = shape[-dims:]
    if kind == "max":
        return _max(params, dims, sizes)
    if kind == "avg":
        return _avg(params, dims, sizes)
    if kind == "lp":
        return _lp(params, dims, sizes)
    if kind in ("adaptive_avg", "adaptive_max"):
        return _adaptive(kind, params, dims, sizes)
    if kind == "unpool":
        return _unpool(params, dims, sizes)
    return Decision(
        "refused",
        "fractional max pooling draws random regions per call; no deterministic graph equals it",
        parameter="random regions",
    )
