"""``poolserve train``: train the default models on the training split and save checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poolserve.models.command_options import DEFAULT_CHECKPOINTS, selected_models

NamesArg = Annotated[list[str] | None, typer.Argument(help="Models to train (default: all shipped models).")]
CheckpointsOpt = Annotated[Path, typer.Option(help="Where checkpoints are written.")]


def train(names: NamesArg = None, checkpoints: CheckpointsOpt = DEFAULT_CHECKPOINTS) -> None:
    """Train default models (fixed seeds, one CPU thread) and save runs/checkpoints/<name>.pt."""
    from poolserve.models.mnist import held_out_split
    from poolserve.models.train_classifier import train_classifier
    from poolserve.models.train_region import train_region
    from poolserve.models.training import save_checkpoint
    from poolserve.models.zoo import SPECS

    selected = selected_models(names)
    splits = held_out_split()
    for name in selected:
        spec = SPECS[name]
        trainer = train_classifier if spec.task == "classification" else train_region
        model, report = trainer(spec, splits.train)
        path = save_checkpoint(checkpoints, model, report)
        typer.echo(f"{name}: trained {report.epochs} epochs in {report.seconds:.1f} s -> {path}")
