"""What the shipped-model commands share: their default folders, their options and which models they
name. Torch-free: the ``poolserve`` command imports it at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_CHECKPOINTS = Path("runs/checkpoints")  # where `poolserve train` leaves them for `poolserve export`
DEFAULT_REPOSITORY = Path("model_repository")
NamesArg = Annotated[list[str] | None, typer.Argument(help="Models (default: all shipped models).")]
RepositoryOpt = Annotated[Path, typer.Option(help="Model repository root.")]


def selected_models(names: list[str] | None, variants: bool = False) -> list[str]:
    """Shipped model names; with ``variants``, their quantized entries (``NAME-int8``, ``NAME-fp16``) too."""
    from poolserve.models.zoo import SPECS

    known = set(SPECS)
    if variants:
        known |= {f"{name}-{mode}" for name in SPECS for mode in ("int8", "fp16")}
    selected = names or list(SPECS)
    unknown = sorted(set(selected) - known)
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {unknown}; known: {sorted(known)}")
    return selected
