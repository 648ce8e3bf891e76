"""``poolserve extract``: the command line over the dataset, shard and engine modules."""

from __future__ import annotations

import importlib.util
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from poolserve.extract.job import parse_model_arg


class Engine(StrEnum):
    LOCAL = "local"
    RAY = "ray"
    HTTP = "http"


class EncodingChoice(StrEnum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"


EXIT_INPUT_ERRORS = 1  # the job finished, but errors.jsonl lists inputs that could not be used
EXIT_UNUSABLE = 2  # the job could not run at all
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); --resume continues


def extract_command(
    model: Annotated[str, typer.Argument(help="MODEL or MODEL:VERSION")],
    images: Annotated[str, typer.Option(help="a folder (recursive), a glob, or a .txt list of paths")],
    output: Annotated[Path, typer.Option(help="folder for part-NNNNN.parquet shards and errors.jsonl")],
    boxes: Annotated[
        Path | None, typer.Option(help="region models: COCO annotation .json or JSON Lines .jsonl")
    ] = None,
    engine: Annotated[Engine, typer.Option(help="where the model runs")] = Engine.LOCAL,
    ray_address: Annotated[str | None, typer.Option(help="an existing Ray cluster (default: local)")] = None,
    server: Annotated[str | None, typer.Option(help="http engine: the service's base URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="POOLSERVE_API_KEY", help="http engine")] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="images per model call (per request over HTTP)")
    ] = 32,
    workers: Annotated[
        int, typer.Option(min=1, help="local: decode threads; ray: actors; http: requests in flight")
    ] = 2,
    threads: Annotated[
        int, typer.Option(min=0, help="local: onnxruntime intra-op threads (0: all cores)")
    ] = 0,
    encoding: Annotated[EncodingChoice, typer.Option(help="features column type")] = EncodingChoice.FLOAT32,
    top_k: Annotated[int, typer.Option(min=1, help="labels per row, for models with scores")] = 5,
    shard_size: Annotated[int, typer.Option(min=1, help="images per Parquet shard")] = 1000,
    resume: Annotated[bool, typer.Option(help="keep the shards already complete in --output")] = False,
    repository: Annotated[Path | None, typer.Option(help="model repository (local and ray)")] = None,
) -> None:
    """Extract features (region models) or predictions (classifiers) for a whole dataset into Parquet.

    Exit status: 0 when every input was used, 1 when errors.jsonl lists inputs that were not, 2 when the
    job could not run.
    """
    if importlib.util.find_spec("pyarrow") is None:  # e.g. the serving image: say what to install
        typer.echo(
            "poolserve extract writes Parquet with pyarrow: pip install 'poolserve[extract]'", err=True
        )
        raise typer.Exit(EXIT_UNUSABLE)
    from poolserve.extract.run import ExtractRequest, JobError, run_job

    try:
        name, version = parse_model_arg(model)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        failed = run_job(
            ExtractRequest(
                name=name,
                version=version,
                images=images,
                boxes=boxes,
                output=output,
                engine=engine.value,
                encoding=encoding.value,
                batch_size=batch_size,
                workers=workers,
                threads=threads,
                top_k=top_k,
                shard_size=shard_size,
                resume=resume,
                repository=repository,
                ray_address=ray_address,
                server=server,
                api_key=api_key,
            )
        )
    except JobError as exc:
        typer.echo(f"poolserve extract: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    except KeyboardInterrupt:  # Ctrl-C: say what is kept and how to go on, not a traceback or nothing
        typer.echo(
            f"poolserve extract: interrupted; the shards already written in {output} are kept: "
            "the same command with --resume continues",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if failed:
        typer.echo(f"{failed} inputs could not be used; see {output / 'errors.jsonl'}", err=True)
        raise typer.Exit(EXIT_INPUT_ERRORS)
