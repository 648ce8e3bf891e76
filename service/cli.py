"""``poolserve serve``: run the HTTP service, supervised (N server processes, each restarted when it dies)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[str | None, typer.Option(help="bind address \\[default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port \\[default: 8000]")] = None,
    repository: Annotated[
        Path | None, typer.Option(help="model repository \\[default: ./model_repository]")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="server processes sharing the socket, each with cores/N onnxruntime threads "
            "\\[default: 1, or POOLSERVE_WORKERS]",
        ),
    ] = None,
    supervise: Annotated[
        bool,
        typer.Option(
            help="run the server in a child process and start a new one whenever it dies (a native "
            "crash, a stalled inference); --no-supervise runs it in this process"
        ),
    ] = True,
) -> None:
    """Serve the model repository over HTTP (settings also from POOLSERVE_* variables and .env)."""
    # lazily: `poolserve --help` should not pay for the server stack
    from poolserve.service.startup import StartupError, checked_settings, refuse
    from poolserve.service.supervisor import listen, serve_supervised

    given = {"host": host, "port": port, "repository": repository, "workers": workers}
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        settings = checked_settings(overrides)
        if not supervise and settings.workers > 1:
            raise typer.BadParameter(
                "several workers need the supervisor; drop --no-supervise", param_hint="--workers"
            )
        if supervise:
            # The server process reads its settings from the environment: the command line's go there.
            env = {f"POOLSERVE_{k.upper()}": str(v) for k, v in overrides.items()}
            sys.exit(serve_supervised(settings, env))
        from poolserve.service.serve import serve_on

        serve_on(listen(settings.host, settings.port), settings)
    except StartupError as exc:
        refuse(exc, "poolserve serve")
