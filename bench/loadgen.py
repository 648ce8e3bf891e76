"""The load generator: ``wrk`` (C, epoll, one thread) pinned to the client core, closed loop with a
fixed number of connections, every request the same prepared body. A Lua ``done`` hook writes the
latency percentiles as JSON. wrk's own CPU time is recorded per run, so its overhead is on the record.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.processes import prioritize

BOUNDARY = "poolservebenchboundary7MA4YWxkTrZu0gW"

_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = {content_type}
local f = assert(io.open({body_path}, "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local out = assert(io.open({out_path}, "w"))
  local e = summary.errors
  out:write(string.format(
    '{{"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "mean_us": %.1f, "max_us": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d}}',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99)))
  out:close()
end
"""


@dataclass(frozen=True)
class Payload:
    """One request body, sent unchanged by every connection."""

    content_type: str
    body: bytes
    images_per_request: int = 1


def multipart(files: list[tuple[str, str, bytes, str]], fields: dict[str, str] | None = None) -> Payload:
    """``files``: (field, filename, data, content type). ``fields``: plain text form fields."""
    parts: list[bytes] = []
    for field, filename, data, content_type in files:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    for field, value in (fields or {}).items():
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n'
        parts.append(head.encode() + value.encode() + b"\r\n")
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return Payload(f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts), len(files))


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    throughput_rps: float
    images_per_s: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    client_cpu_s: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for these paths


def run_wrk(url: str, payload: Payload, concurrency: int, duration_s: float, client_cores: str) -> LoadResult:
    """One closed-loop run of ``duration_s`` seconds with ``concurrency`` connections."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="poolserve-bench-") as scratch:
        body_path = Path(scratch) / "body"
        body_path.write_bytes(payload.body)
        out_path = Path(scratch) / "result.json"
        script = Path(scratch) / "post.lua"
        script.write_text(
            _LUA.format(
                content_type=_lua_string(payload.content_type),
                body_path=_lua_string(str(body_path)),
                out_path=_lua_string(str(out_path)),
            )
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        argv = [
            "taskset",
            "-c",
            client_cores,
            "nice",
            "-n",
            "-10",
            wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            url,
        ]
        wrk_process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        prioritize(wrk_process.pid)
        _, stderr = wrk_process.communicate(timeout=duration_s + 120)
        if wrk_process.returncode != 0:
            raise RuntimeError(f"wrk failed ({wrk_process.returncode}): {stderr.decode()[-500:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        raw = json.loads(out_path.read_text())
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in raw if k.startswith("errors_"))
    good = raw["requests"] - raw["errors_status"]
    return LoadResult(
        concurrency=concurrency,
        duration_s=seconds,
        requests=raw["requests"],
        errors=errors,
        throughput_rps=good / seconds,
        images_per_s=good * payload.images_per_request / seconds,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        client_cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
