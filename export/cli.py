"""``poolserve export`` / ``verify`` / ``export-samples``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from models.checkpoints import DEFAULT_CHECKPOINTS

DEFAULT_REPOSITORY = Path("model_repository")
DEFAULT_SAMPLES = Path("tests/data")
NamesArg = Annotated[list[str] | None, typer.Argument(help="Models (default: all shipped models).")]
RepositoryOpt = Annotated[Path, typer.Option(help="Model repository root.")]
CheckpointsOpt = Annotated[Path, typer.Option(help="Checkpoints written by `poolserve train`.")]


def _selected(names: list[str] | None) -> list[str]:
    from models.zoo import SPECS

    selected = names or list(SPECS)
    unknown = sorted(set(selected) - set(SPECS))
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {unknown}; known: {sorted(SPECS)}")
    return selected


def export(
    names: NamesArg = None,
    checkpoints: CheckpointsOpt = DEFAULT_CHECKPOINTS,
    repository: RepositoryOpt = DEFAULT_REPOSITORY,
) -> None:
    """Export trained checkpoints to ONNX, verify parity, evaluate on the held-out split, write entries."""
    from export.entry import export_entry
    from models.mnist import held_out_split
    from models.training import configure_determinism, load_checkpoint
    from models.zoo import SPECS

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


SamplesOpt = Annotated[Path, typer.Option(help="Where digits/ and canvases/ are written.")]


def export_samples(output: SamplesOpt = DEFAULT_SAMPLES) -> None:
    """Write held-out digits (10 per class) and held-out canvases as PNG files, with their labels."""
    from models.mnist import held_out_split
    from models.samples import write_canvas_pngs, write_digit_pngs

    test = held_out_split().test
    digits = write_digit_pngs(test, output / "digits")
    index = write_canvas_pngs(test, output / "canvases")
    typer.echo(f"{len(digits)} digits in {output / 'digits'}; canvases indexed in {index}")


def verify(names: NamesArg = None, repository: RepositoryOpt = DEFAULT_REPOSITORY) -> None:
    """Re-check committed entries: sha256, onnx.checker, and every recorded figure (held-out and shifted)
    re-measured equal to the manifest's."""
    from export.audit import audit_entry

    failures = 0
    for name in _selected(names):
        result = audit_entry(repository, name)
        typer.echo(result.summary())
        failures += not result.ok
    if failures:
        raise typer.Exit(1)
