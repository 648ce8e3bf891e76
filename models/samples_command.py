"""``poolserve export-samples``: held-out digits and canvases as PNG files, for tests and demos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_SAMPLES = Path("tests/data")
SamplesOpt = Annotated[Path, typer.Option(help="Where digits/ and canvases/ are written.")]


def export_samples(output: SamplesOpt = DEFAULT_SAMPLES) -> None:
    """Write held-out digits (10 per class) and held-out canvases as PNG files, with their labels."""
    from poolserve.models.mnist import held_out_split
    from poolserve.models.sample_files import write_canvas_pngs, write_digit_pngs

    test = held_out_split().test
    digits = write_digit_pngs(test, output / "digits")
    index = write_canvas_pngs(test, output / "canvases")
    typer.echo(f"{len(digits)} digits in {output / 'digits'}; canvases indexed in {index}")
