"""``poolserve export`` / ``verify`` / ``export-samples``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poolserve.models.checkpoints import DEFAULT_CHECKPOINTS
from poolserve.repository.manifest import QuantizationMode

DEFAULT_REPOSITORY = Path("model_repository")
DEFAULT_SAMPLES = Path("tests/data")
NamesArg = Annotated[list[str] | None, typer.Argument(help="Models (default: all shipped models).")]
RepositoryOpt = Annotated[Path, typer.Option(help="Model repository root.")]
CheckpointsOpt = Annotated[Path, typer.Option(help="Checkpoints written by `poolserve train`.")]
QuantizeOpt = Annotated[
    QuantizationMode | None,
    typer.Option(
        help="Instead: write NAME-int8 or NAME-fp16 from the committed float32 entry NAME/1 "
        "(int8 calibrated on training-split images; accuracy on the held-out split)."
    ),
]


def _selected(names: list[str] | None, variants: bool = False) -> list[str]:
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


def export(
    names: NamesArg = None,
    checkpoints: CheckpointsOpt = DEFAULT_CHECKPOINTS,
    repository: RepositoryOpt = DEFAULT_REPOSITORY,
    quantize: QuantizeOpt = None,
) -> None:
    """Export trained checkpoints to ONNX, verify parity, evaluate on the held-out split, write entries."""
    if quantize is not None:
        _export_quantized(_selected(names), quantize, repository)
        return
    from poolserve.export.entry import export_entry
    from poolserve.models.mnist import held_out_split
    from poolserve.models.training import configure_determinism, load_checkpoint
    from poolserve.models.zoo import SPECS

    configure_determinism()
    splits = held_out_split()
    for name in _selected(names):
        spec = SPECS[name]
        model = spec.build()
        load_checkpoint(checkpoints, name, model)
        entry = export_entry(spec, model, splits, repository)
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


SamplesOpt = Annotated[Path, typer.Option(help="Where digits/ and canvases/ are written.")]


def export_samples(output: SamplesOpt = DEFAULT_SAMPLES) -> None:
    """Write held-out digits (10 per class) and held-out canvases as PNG files, with their labels."""
    from poolserve.models.mnist import held_out_split
    from poolserve.models.samples import write_canvas_pngs, write_digit_pngs

    test = held_out_split().test
    digits = write_digit_pngs(test, output / "digits")
    index = write_canvas_pngs(test, output / "canvases")
    typer.echo(f"{len(digits)} digits in {output / 'digits'}; canvases indexed in {index}")


def verify(names: NamesArg = None, repository: RepositoryOpt = DEFAULT_REPOSITORY) -> None:
    """Re-check committed entries: sha256, onnx.checker, and every recorded figure (held-out and shifted)
    re-measured with onnxruntime (one sample may differ: a near-tie can flip on another CPU). Quantized
    variants (NAME-int8, NAME-fp16) are checked when named."""
    from poolserve.export.audit import audit_entry

    failures = 0
    for name in _selected(names, variants=True):
        result = audit_entry(repository, name)
        typer.echo(result.summary())
        failures += not result.ok
    if failures:
        raise typer.Exit(1)
