"""``poolserve verify``: re-check committed entries against their manifests (``poolserve.export.verify``)."""

from __future__ import annotations

import typer

from poolserve.models.command_options import DEFAULT_REPOSITORY, NamesArg, RepositoryOpt, selected_models


def verify(names: NamesArg = None, repository: RepositoryOpt = DEFAULT_REPOSITORY) -> None:
    """Re-check committed entries: sha256, onnx.checker, and every recorded figure (held-out and shifted)
    re-measured with onnxruntime (one sample may differ: a near-tie can flip on another CPU). Quantized
    variants (NAME-int8, NAME-fp16) are checked when named."""
    from poolserve.export.verify import verify_entry

    failures = 0
    for name in selected_models(names, variants=True):
        result = verify_entry(repository, name)
        typer.echo(result.summary())
        failures += not result.ok
    if failures:
        raise typer.Exit(1)
