"""The pooling audit: every pooling call a model makes, seen while it runs, and what export does with it.

A ``TorchFunctionMode`` sees each call to a pooling function whether it comes from an ``nn`` module or
from a functional call in a ``forward`` (``F.avg_pool2d(x, 2, divisor_override=3)``), in 1-D, 2-D and
3-D, with the concrete input shape. Global module hooks name the module the call happens in. Each call is
exported natively, replaced by an exact equivalent (``poolserve.export.pooling_rewrites``) while the exporter
traces, or refused with the reason (``UnsupportedPoolingError``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from poolserve.export.pooling_rules import Decision, UnsupportedPoolingError, decide
from poolserve.repository.manifest import PoolingLayer

_MAX = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_LP = ("norm_type", "kernel_size", "stride", "ceil_mode")
_ADAPTIVE = ("output_size", "return_indices")
_UNPOOL = ("indices", "kernel_size", "stride", "padding", "output_size")
_FRACTIONAL = ("kernel_size", "output_size", "output_ratio", "return_indices", "_random_samples")


@dataclass(frozen=True)
class _Function:
    name: str  # as a user would write it, e.g. "F.max_pool2d"
    kind: str  # max | avg | lp | adaptive_avg | adaptive_max | unpool | fractional
    dims: int
    parameters: tuple[str, ...]
    indices: bool = False  # the *_with_indices variants always return indices


def _table() -> dict[Callable[..., Any], _Function]:
    table: dict[Callable[..., Any], _Function] = {}
    for d in (1, 2, 3):

        def add(func: Any, kind: str, params: tuple[str, ...], name: str, indices: bool = False) -> None:
            if func is not None:
                table.setdefault(func, _Function(name, kind, d, params, indices))  # noqa: B023

        add(getattr(F, f"max_pool{d}d"), "max", _MAX, f"F.max_pool{d}d")
        add(getattr(F, f"max_pool{d}d_with_indices"), "max", _MAX, f"F.max_pool{d}d", True)
        add(getattr(torch, f"max_pool{d}d", None), "max", _MAX, f"torch.max_pool{d}d")
        add(getattr(F, f"avg_pool{d}d"), "avg", _AVG, f"F.avg_pool{d}d")
        add(getattr(torch, f"avg_pool{d}d", None), "avg", _AVG, f"torch.avg_pool{d}d")
        add(getattr(F, f"lp_pool{d}d", None), "lp", _LP, f"F.lp_pool{d}d")
        add(getattr(F, f"adaptive_avg_pool{d}d"), "adaptive_avg", _ADAPTIVE, f"F.adaptive_avg_pool{d}d")
        add(
            getattr(torch, f"adaptive_avg_pool{d}d", None),
            "adaptive_avg",
            _ADAPTIVE,
            f"torch.adaptive_avg_pool{d}d",
        )
        add(getattr(F, f"adaptive_max_pool{d}d"), "adaptive_max", _ADAPTIVE, f"F.adaptive_max_pool{d}d")
        add(
            getattr(F, f"adaptive_max_pool{d}d_with_indices"),
            "adaptive_max",
            _ADAPTIVE,
            f"F.adaptive_max_pool{d}d",
            True,
        )
        add(getattr(F, f"max_unpool{d}d"), "unpool", _UNPOOL, f"F.max_unpool{d}d")
        add(
            getattr(F, f"fractional_max_pool{d}d", None),
            "fractional",
            _FRACTIONAL,
            f"F.fractional_max_pool{d}d",
        )
        add(
            getattr(F, f"fractional_max_pool{d}d_with_indices", None),
            "fractional",
            _FRACTIONAL,
            f"F.fractional_max_pool{d}d",
            True,
        )
    return table


_FUNCTIONS = _table()


def _bind(function: _Function, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = dict(zip(function.parameters, args[1:], strict=False))
    bound.update(kwargs)
    if function.indices:
        bound["return_indices"] = True
    return bound


def _plain(value: Any) -> Any:
    """A JSON-friendly parameter value for the manifest."""
    if isinstance(value, torch.Tensor):
        return f"tensor{list(value.shape)}"
    if isinstance(value, tuple | list | torch.Size):
        return [_plain(v) for v in value]
    return value


@dataclass
class _ModuleStack:
    """Which named module is running now; pushed and popped by global forward hooks."""

    names: dict[int, str]
    stack: list[nn.Module] = field(default_factory=list)

    def innermost(self) -> tuple[str, nn.Module | None]:
        for module in reversed(self.stack):
            if id(module) in self.names:
                return self.names[id(module)] or "<root>", module
        return "<root>", None


class PoolingAudit(TorchFunctionMode):
    """Records each pooling call; with ``rewrite`` it also returns the exact equivalents in its place."""

    def __init__(self, modules: _ModuleStack, rewrite: bool):
        super().__init__()
        self.modules = modules
        self.rewrite = rewrite
        self.layers: list[PoolingLayer] = []
        self.refusals: list[UnsupportedPoolingError] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        function = _FUNCTIONS.get(func)
        if function is None:
            return func(*args, **kwargs)
        with warnings.catch_warnings():
            # Reading the concrete input size while tracing is the point: the rewrites are for that size.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return self._pool(func, function, args, kwargs)

    def _pool(
        self, func: Callable[..., Any], function: _Function, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        path, module = self.modules.innermost()
        own = module is not None and type(module).__module__ == "torch.nn.modules.pooling"
        op = type(module).__name__ if own and module is not None else function.name
        bound = _bind(function, args, kwargs)
        shape = [int(n) for n in args[0].shape]
        decision: Decision = decide(function.kind, function.dims, bound, shape)
        self.layers.append(
            PoolingLayer(
                path=path,
                op=op,
                parameters={k: _plain(v) for k, v in bound.items() if not k.startswith("_")},
                input_shape=shape,
                export=decision.treatment,
                note=decision.note,
            )
        )
        if decision.treatment == "refused":
            self.refusals.append(UnsupportedPoolingError(path, f"{op}: {decision.parameter}", decision.note))
        if self.rewrite and decision.replacement is not None:
            return decision.replacement(args[0], lambda: func(*args, **kwargs))
        return func(*args, **kwargs)


@contextmanager
def audited(model: nn.Module, rewrite: bool) -> Iterator[PoolingAudit]:
    """Within the block, every pooling call ``model`` makes is recorded (and, with ``rewrite``, replaced)."""
    modules = _ModuleStack({id(m): path for path, m in model.named_modules()})

    def enter(module: nn.Module, args: Any) -> None:
        modules.stack.append(module)

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        if modules.stack and modules.stack[-1] is module:
            modules.stack.pop()

    handles: list[RemovableHandle] = [
        nn.modules.module.register_module_forward_pre_hook(enter),
        nn.modules.module.register_module_forward_hook(leave, always_call=True),
    ]
    audit = PoolingAudit(modules, rewrite)
    try:
        with audit:
            yield audit
    finally:
        for handle in handles:
            handle.remove()


def audit_pooling(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> list[PoolingLayer]:
    """Run ``model`` once and return its pooling audit; raise the first refusal, naming layer and reason."""
    with torch.no_grad(), audited(model, rewrite=False) as audit:
        model(*example_inputs)
    if audit.refusals:
        raise audit.refusals[0]
    return audit.layers
