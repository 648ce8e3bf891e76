"""``poolserve export-model FILE.py:FACTORY ...``: a user's PyTorch model to a verified repository entry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from poolserve.repository.manifest import QuantizationMode

ColorMode = Literal["L", "RGB", "BGR"]
TaskName = Literal["classification", "region-features"]


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise typer.BadParameter(f"{text!r}: expected CxHxW, e.g. 3x224x224")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected comma-separated numbers, e.g. 0.485,0.456,0.406"
        ) from None


def export_model_command(
    target: Annotated[
        str, typer.Argument(help="FILE.py:FACTORY or package.module:FACTORY returning an nn.Module.")
    ],
    name: Annotated[str, typer.Option(help="Entry name: lowercase letters, digits, '.', '_', '-'.")],
    input: Annotated[str, typer.Option("--input", help="Input shape CxHxW, e.g. 3x224x224.")],
    weights: Annotated[
        Path | None, typer.Option(help="state_dict file (omit if the factory loads its own).")
    ] = None,
    task: Annotated[TaskName, typer.Option(help="classification or region-features.")] = "classification",
    color: Annotated[
        ColorMode | None, typer.Option(help="Colour mode (default L for 1 channel, else RGB).")
    ] = None,
    mean: Annotated[str | None, typer.Option(help="Per-channel mean after scaling, comma-separated.")] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel std after scaling, comma-separated.")] = None,
    scale: Annotated[float, typer.Option(help="Pixel scale before mean/std.")] = 1.0 / 255.0,
    labels: Annotated[
        Path | None, typer.Option(help="Labels file, one per line (default class_0...).")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option(help="Folder of images also used in the parity check.")
    ] = None,
    version: Annotated[int, typer.Option(help="Entry version.")] = 1,
    description: Annotated[str | None, typer.Option(help="One-line description for the manifest.")] = None,
    license: Annotated[
        str, typer.Option(help="Licence of the weights, recorded in the manifest.")
    ] = "unspecified",
    repository: Annotated[Path, typer.Option(help="Model repository root.")] = Path("model_repository"),
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing entry of that name and version.")
    ] = False,
    quantize: Annotated[
        QuantizationMode | None,
        typer.Option(
            help="Write an int8 (static QDQ) or fp16 graph instead; needs --calibration or --samples."
        ),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(help="Training images to calibrate int8 ranges on (default: --samples)."),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Largest absolute difference accepted between onnxruntime and torch, and between an image "
            "batched and alone (default 1e-5); raise it for outputs so large that float32 rounding alone "
            "exceeds it.",
        ),
    ] = None,
) -> None:
    """Export your PyTorch model: pooling audited (rewritten or refused), parity-checked, staged."""
    shape = _shape(input)
    mean_values, std_values = _floats(mean), _floats(std)
    from poolserve.export.user_loading import (
        UserModelError,
        build_module,
        load_factory,
        load_labels,
        load_weights,
    )
    from poolserve.export.user_model import export_model

    try:
        module = build_module(load_factory(target), target)
        if weights is not None:
            load_weights(module, weights)
        manifest = export_model(
            module,
            name=name,
            input_shape=shape,
            task=task,
            repository=repository,
            labels=load_labels(labels) if labels is not None else None,
            color_mode=color,
            mean=mean_values,
            std=std_values,
            scale=scale,
            samples=samples,
            version=version,
            description=description,
            weights_origin=str(weights) if weights is not None else f"{target} (its own weights)",
            license=license,
            overwrite=overwrite,
            quantize=quantize,
            calibration=calibration,
            **({} if tolerance is None else {"tolerance": tolerance}),
        )
    except UserModelError as exc:
        typer.echo(f"export-model: {exc}", err=True)
        raise typer.Exit(1) from None
    rewritten = sum(layer.export == "rewritten" for layer in manifest.pooling or [])
    if manifest.quantization is not None:
        agreement = manifest.quantization.top1_agreement
        typer.echo(
            f"{manifest.quantization.mode}: top-1 agreement with float32 "
            + (f"{agreement:.4f}" if agreement is not None else "n/a (no scores output)")
            + f" on {manifest.quantization.compared_on}"
        )
    typer.echo(
        f"{manifest.name}/{manifest.version}: {repository / manifest.name / str(manifest.version)} "
        f"max_abs_error={manifest.verification.max_abs_error:.3g}; pooling calls: "
        f"{len(manifest.pooling or [])} ({rewritten} rewritten)"
    )
