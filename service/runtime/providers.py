"""Choosing onnxruntime execution providers: a pure function of what was asked and what is available."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from poolserve.service.errors import ProviderUnavailable
from poolserve.service.settings import ProviderChoice

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class ProviderSelection:
    providers: list[str]  # in priority order, as onnxruntime's ``providers=`` wants them
    warning: str | None = None


def select_providers(requested: ProviderChoice, available: Sequence[str], strict: bool) -> ProviderSelection:
    """``auto``: CUDA when onnxruntime offers it, else CPU. ``cuda`` without CUDA: CPU with a warning, or
    ``ProviderUnavailable`` in strict mode. CPU always stays last, so nodes CUDA lacks (MaxRoiPool) still run.
    """
    has_cuda = CUDA in available
    if requested == "cpu":
        return ProviderSelection([CPU])
    if has_cuda:
        return ProviderSelection([CUDA, CPU])
    if requested == "auto":
        return ProviderSelection([CPU])
    message = f"execution provider 'cuda' requested but onnxruntime offers only {list(available)}"
    if strict:
        raise ProviderUnavailable(message)
    return ProviderSelection([CPU], warning=message + "; falling back to CPU")
