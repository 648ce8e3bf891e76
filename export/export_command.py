"""``poolserve export``: trained checkpoints to verified repository entries, or quantized variants of the
committed ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poolserve.models.command_options import (
    DEFAULT_CHECKPOINTS,
    DEFAULT_REPOSITORY,
    NamesArg,
    RepositoryOpt,
    selected_models,
)
from poolserve.repository.manifest import QuantizationMode

CheckpointsOpt = Annotated[Path, typer.Option(help="Checkpoints written by `poolserve train`.")]
QuantizeOpt = Annotated[
    QuantizationMode | None,
    typer.Option(
        help="Instead: write NAME-int8 or NAME-fp16 from the committed float32 entry NAME/1 "
        "(int8 calibrated on training-split images; accuracy on the held-out split)."
    ),
]


def export(
    names: NamesArg = None,
    checkpoints: CheckpointsOpt = DEFAULT_CHECKPOINTS,
    repository: RepositoryOpt = DEFAULT_REPOSITORY,
    quantize: QuantizeOpt = None,
) -> None:
    """Export trained checkpoints to ONNX, verify parity, evaluate on the held-out split, write entries."""
    if quantize is not None:
        _export_quantized(selected_models(names), quantize, repository)
        return
    from poolserve.export.digit_entry import export_digit_entry
    from poolserve.models.mnist import held_out_split
    from poolserve.models.training import configure_determinism, load_checkpoint
    from poolserve.models.zoo import SPECS

    configure_determinism()
    splits = held_out_split()
    for name in selected_models(names):
        spec = SPECS[name]
        model = spec.build()
        load_checkpoint(checkpoints, name, model)
        entry = export_digit_entry(spec, model, splits, repository)
        figures = ", ".join(f"{f.metric}={f.value:.4f} (n={f.samples})" for f in entry.figures)
        typer.echo(
            f"{name}: {entry.directory} max_abs_error={entry.parity.max_abs_error:.3g} "
            f"over {entry.parity.cases} cases; {figures}"
        )


def _export_quantized(names: list[str], mode: QuantizationMode, repository: Path) -> None:
    from poolserve.export.quantize_shipped import quantize_shipped
    from poolserve.export.quantized_entry import QuantizationError

    refused = 0
    for name in names:
        try:
            entry = quantize_shipped(name, mode, repository)
        except QuantizationError as exc:
            typer.echo(f"{name}: refused: {exc}", err=True)
            refused += 1
            continue
        agreement = entry.parity.top1_agreement
        typer.echo(
            f"{entry.manifest.name}: max_abs_error={entry.parity.max_abs_error:.3g} "
            f"(tolerance {entry.parity.tolerance:.3g}) vs float32; top-1 agreement "
            + (f"{agreement:.4f}" if agreement is not None else "n/a")
            + f"; held-out {entry.manifest.evaluations[0].metric}={entry.accuracy.value:.4f} "
            f"(float32 {entry.float32_accuracy:.4f}) on {entry.accuracy.samples}"
        )
    if refused:
        raise typer.Exit(1)
