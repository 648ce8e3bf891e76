"""One server process: the app under uvicorn on a listening socket it is handed.

``python -m poolserve.service.serve --fd N`` is what the supervisor (``poolserve.service.supervisor``)
starts, once and again
after every death; it reads its settings from the ``POOLSERVE_*`` environment like everything else.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from poolserve.service.api.middleware import quiet_expected_drops
from poolserve.service.app import create_app
from poolserve.service.settings import Settings
from poolserve.service.slow_clients import ServerConfig, protocol_class

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the app's models when its graceful shutdown starts.

    At the end of the grace period uvicorn cancels the requests still running and answers them 500; told
    in advance, the models answer those 503 with ``Retry-After`` instead (a stop is not a server error).
    """

    def __init__(self, config: ServerConfig, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        runtime = getattr(self._app.state, "runtime", None)  # absent if the lifespan never started
        if runtime is not None:
            runtime.registry.begin_shutdown()
        await super().shutdown(sockets)


def server_config(app: FastAPI, settings: Settings) -> ServerConfig:
    config = ServerConfig(
        app,
        http=protocol_class(),
        header_timeout_s=settings.header_timeout_s,
        write_timeout_s=settings.request_timeout_s,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        server_header=False,  # no "Server: uvicorn" for fingerprinting; the Date header stays
    )
    quiet_expected_drops()  # after the config, which sets up the server's loggers
    return config


def serve_on(sock: socket.socket, settings: Settings, serve_after_load: bool = False) -> None:
    """Serve until SIGTERM/SIGINT, then drain for ``shutdown_grace_s`` and return (exit status 0).
    ``serve_after_load``: accept connections only once the models have loaded (``create_app``)."""
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done; a clean stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = create_app(settings, serve_after_load)
    DrainingServer(server_config(app, settings), app).run(sockets=[sock])


def follow_parent() -> None:
    """Linux: get SIGTERM when the supervisor dies, even by SIGKILL, instead of serving on, orphaned."""
    parent = os.getppid()
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        sys.exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    parser.add_argument(
        "--serve-after-load", action="store_true", help="accept connections once the models have loaded"
    )
    args = parser.parse_args(argv)
    follow_parent()
    # Wrapping the descriptor (not socket.fromfd, which duplicates it) lets uvicorn's shutdown close the
    # listener itself, so the port stops accepting as soon as the drain starts.
    serve_on(socket.socket(fileno=args.fd), Settings(), args.serve_after_load)


if __name__ == "__main__":
    main()
