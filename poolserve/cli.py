"""The ``poolserve`` command. Each subcommand lives beside the code it drives; heavy imports (torch,
onnxruntime) happen inside the commands, so ``poolserve serve`` never imports torch."""

from __future__ import annotations

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


# Subcommands are registered below, one line each, from the package that owns them.
from service.cli import serve  # noqa: E402  (typer only; uvicorn and onnxruntime load inside the command)

app.command()(serve)

from export.import_command import import_command  # noqa: E402  (onnx and onnxruntime load inside the command)

app.command("import")(import_command)


# Delegates without importing loadtests/ until used: the runtime image ships without it (and locust).
@app.command(
    "loadtest",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def loadtest(ctx: typer.Context) -> None:
    """Load-test a deployment with locust (same options as `python -m loadtests run`; see --help)."""
    from loadtests.cli import run_as

    run_as("poolserve loadtest", ctx.args)


from extract.command import extract_command  # noqa: E402  (onnxruntime, pyarrow and Ray load inside the command)

app.command("extract")(extract_command)

from export.pretrained_command import export_pretrained  # noqa: E402  (torch loads inside the command)

app.command("export-pretrained")(export_pretrained)
from export.export_model_command import export_model_command  # noqa: E402  (torch loads inside the command)

app.command("export-model")(export_model_command)
from export.cli import export, export_samples, verify  # noqa: E402  (torch loads inside the commands)
from models.cli import train  # noqa: E402  (torch loads inside the command)

app.command("train")(train)
app.command("export")(export)
app.command("verify")(verify)
app.command("export-samples")(export_samples)
