"""A closed-loop HTTP load generator with no dependencies beyond the standard library.

The GPU machine has no ``wrk`` and may lack httpx: each client process holds its share of the keep-alive
connections, each connection sends the same POST again as soon as the answer is in, for a fixed time.
Several processes, so the client is not what limits a 16-core server at concurrency 128.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float


async def _connection(host: str, port: int, request: bytes, until: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            if status == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1
    finally:
        writer.close()
    return errors


async def _client(
    url: str, body: bytes, content_type: str, connections: int, seconds: float
) -> tuple[list[float], int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    errors = await asyncio.gather(
        *(_connection(host, port, request, until, latencies) for _ in range(connections))
    )
    return latencies, sum(errors)


def _process(args: tuple[str, bytes, str, int, float]) -> tuple[list[float], int]:
    return asyncio.run(_client(*args))


def run_load(
    url: str, body: bytes, content_type: str, concurrency: int, seconds: float, processes: int
) -> LoadResult:
    """``concurrency`` connections spread over up to ``processes`` client processes for ``seconds``."""
    workers = max(1, min(processes, concurrency))
    shares = [concurrency // workers + (i < concurrency % workers) for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        outcomes = pool.map(_process, [(url, body, content_type, share, seconds) for share in shares])
    latencies = sorted(v for done, _ in outcomes for v in done)
    errors = sum(e for _, e in outcomes)
    if not latencies:
        return LoadResult(concurrency, seconds, 0, errors, 0.0, float("nan"), float("nan"))
    return LoadResult(
        concurrency=concurrency,
        seconds=seconds,
        requests=len(latencies),
        errors=errors,
        requests_per_s=len(latencies) / seconds,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
    )
