"""``poolserve serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[str | None, typer.Option(help="bind address [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 8000]")] = None,
    repository: Annotated[
        Path | None, typer.Option(help="model repository [default: ./model_repository]")
    ] = None,
) -> None:
    """Serve the model repository over HTTP (settings also from POOLSERVE_* variables and .env)."""
    import uvicorn  # lazily: `poolserve --help` should not pay for the server stack

    from service.app import create_app
    from service.settings import Settings

    overrides = {
        k: v for k, v in {"host": host, "port": port, "repository": repository}.items() if v is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done; a clean stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        server_header=False,  # no "Server: uvicorn" for fingerprinting; the Date header stays
    )
