"""One server process: the app under uvicorn on a listening socket it is handed.

``python -m service.serve --fd N`` is what the supervisor (``service.supervisor``) starts, once and again
after every death; it reads its settings from the ``POOLSERVE_*`` environment like everything else.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn

from service.app import create_app
from service.settings import Settings
from service.slow_clients import ServerConfig, protocol_class


def server_config(settings: Settings) -> ServerConfig:
    return ServerConfig(
        create_app(settings),
        http=protocol_class(),
        header_timeout_s=settings.header_timeout_s,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        server_header=False,  # no "Server: uvicorn" for fingerprinting; the Date header stays
    )


def serve_on(sock: socket.socket, settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then drain for ``shutdown_grace_s`` and return (exit status 0)."""
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done; a clean stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.Server(server_config(settings)).run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    args = parser.parse_args(argv)
    # Wrapping the descriptor (not socket.fromfd, which duplicates it) lets uvicorn's shutdown close the
    # listener itself, so the port stops accepting as soon as the drain starts.
    serve_on(socket.socket(fileno=args.fd), Settings())


if __name__ == "__main__":
    main()
