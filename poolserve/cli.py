"""The ``poolserve`` command. Each subcommand lives beside the code it drives; heavy imports (torch,
onnxruntime) happen inside the commands, so ``poolserve serve`` never imports torch."""

from __future__ import annotations

import importlib.util

import typer

from poolserve import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Serve pooling CNNs exported to ONNX.")


@app.callback()
def main() -> None:
    """Serve pooling CNNs exported to ONNX: train, export, verify, serve."""


@app.command()
def version() -> None:
    """Print poolserve's version."""
    typer.echo(__version__)


# Subcommands are registered below from the package that owns them; each module holds typer commands
# only (torch, onnxruntime, pyarrow, Ray and locust load inside the command bodies). The runtime image
# installs only poolserve.service and poolserve.repository, so the other packages' commands are
# registered only where their code is installed.
def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


from poolserve.service.cli import serve  # noqa: E402

app.command()(serve)

if _installed("poolserve.extract"):
    from poolserve.extract.command import extract_command

    app.command("extract")(extract_command)

if _installed("poolserve.loadtests"):
    # Delegates without importing loadtests/ (and locust) until used.
    @app.command(
        "loadtest",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def loadtest(ctx: typer.Context) -> None:
        """Load-test a deployment with locust (same options as `python -m poolserve.loadtests run`)."""
        from poolserve.loadtests.cli import run_as

        run_as("poolserve loadtest", ctx.args)


if _installed("poolserve.export") and _installed("poolserve.models"):
    from poolserve.export.export_command import export
    from poolserve.export.export_model_command import export_model_command
    from poolserve.export.import_command import import_command
    from poolserve.export.pretrained_command import export_pretrained
    from poolserve.export.verify_command import verify
    from poolserve.models.samples_command import export_samples
    from poolserve.models.train_command import train

    app.command("train")(train)
    app.command("export")(export)
    app.command("verify")(verify)
    app.command("export-samples")(export_samples)
    app.command("export-model")(export_model_command)
    app.command("export-pretrained")(export_pretrained)
    app.command("import")(import_command)
