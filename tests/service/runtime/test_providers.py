from __future__ import annotations

import pytest

from poolserve.service.errors import ProviderUnavailable
from poolserve.service.runtime.providers import CPU, CUDA, select_providers

WITH_CUDA = ["TensorrtExecutionProvider", CUDA, CPU]
CPU_ONLY = ["AzureExecutionProvider", CPU]


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        ("auto", WITH_CUDA, [CUDA, CPU]),
        ("auto", CPU_ONLY, [CPU]),
        ("cpu", WITH_CUDA, [CPU]),
        ("cpu", CPU_ONLY, [CPU]),
        ("cuda", WITH_CUDA, [CUDA, CPU]),
    ],
)
@pytest.mark.parametrize("strict", [False, True])
def test_selection_without_fallback(requested, available, expected, strict: bool) -> None:
    selection = select_providers(requested, available, strict=strict)
    assert selection.providers == expected
    assert selection.warning is None


def test_cuda_missing_falls_back_to_cpu_with_a_warning() -> None:
    selection = select_providers("cuda", CPU_ONLY, strict=False)
    assert selection.providers == [CPU]
    assert selection.warning is not None and "cuda" in selection.warning


def test_cuda_missing_in_strict_mode_refuses() -> None:
    with pytest.raises(ProviderUnavailable):
        select_providers("cuda", CPU_ONLY, strict=True)
