"""What one request crosses in ``service/``: the files whose code runs, and how often the model is looked up.

    python -m bench.request_path [--quick] [--before REV]

Each request (``/v1`` classify on lenet5-mnist, ``/v1`` features on digits-roialign, ``/v2`` infer on
lenet5-mnist) is handed to the app as ASGI messages after one warm-up request of the same kind, with a
profile hook (``sys.setprofile`` and ``threading.setprofile``, so the batcher's worker thread counts too)
recording every Python function call until the response is sent. A file counts when at least one of its
functions ran; a hop is a call into a ``service/`` function from code in another file (another ``service/``
file, the framework or the event loop: each time control enters one of our files); a model lookup is a
call of ``ModelRegistry.get`` (the by-name dictionary lookup), a
readiness check one of ``ModelRegistry.ready`` or ``ModelEntry.serving``. The same counting runs on the
code at ``--before`` (default: the commit before the one-handle refactoring), extracted with
``git archive``, so the two columns are counted the same way. ``--quick`` is the same run (it takes
seconds); it exists so every bench script takes it. Writes ``bench/results/request_path.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BEFORE = "e39d860"  # main before the one-handle refactoring
LOOKUPS = {"ModelRegistry.get"}
READINESS = {"ModelRegistry.ready", "ModelEntry.serving"}
BOUNDARY = "requestpathboundary"


def _multipart(image: bytes, boxes: str | None) -> tuple[str, bytes]:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + image
        + b"\r\n"
    ]
    if boxes is not None:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="boxes"\r\n\r\n{boxes}\r\n'.encode()
        )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts)


def _requests() -> dict[str, tuple[str, str, bytes]]:
    """name -> (path, content type, body)."""
    data = ROOT / "tests" / "data"
    digit = sorted((data / "digits").glob("*.png"))[0].read_bytes()
    canvas = (data / "canvases" / "canvas_0.png").read_bytes()
    tensor = {
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}]
    }
    return {
        "v1 classify": ("/v1/models/lenet5-mnist/classify", *_multipart(digit, None)),
        "v1 features": (
            "/v1/models/digits-roialign/features",
            *_multipart(canvas, json.dumps([[[4, 4, 40, 40], [50, 20, 90, 70]]])),
        ),
        "v2 infer": ("/v2/models/lenet5-mnist/infer", "application/json", json.dumps(tensor).encode()),
    }


class Recorder:
    """The profile hook: while ``on``, every Python call's file and qualified name, from any thread."""

    def __init__(self, service_root: Path) -> None:
        self.service_root = str(service_root)
        self.on = False
        self.files: dict[str, None] = {}  # insertion-ordered: first call first
        self.calls: Counter[str] = Counter()
        self.hops = 0

    def hook(self, frame: FrameType, event: str, arg: object) -> None:
        if not self.on or event != "call":
            return
        code = frame.f_code
        filename = os.path.realpath(code.co_filename)
        if filename.startswith(self.service_root):
            self.files.setdefault(os.path.relpath(filename, Path(self.service_root).parent))
            self.calls[code.co_qualname] += 1
            caller = frame.f_back
            if caller is None or os.path.realpath(caller.f_code.co_filename) != filename:
                self.hops += 1


async def _send(app: Any, path: str, content_type: str, body: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    sent, status = False, 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _measure() -> dict[str, Any]:
    os.environ["POOLSERVE_REPOSITORY"] = str(ROOT / "model_repository")
    os.environ.setdefault("POOLSERVE_LOG_LEVEL", "warning")
    import poolserve.service
    from poolserve.service.app import create_app

    recorder = Recorder(Path(poolserve.service.__file__).resolve().parent)
    threading.setprofile(recorder.hook)
    sys.setprofile(recorder.hook)
    app = create_app()
    paths: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        # A load that never ends stops the run (TimeoutError) instead of hanging it.
        await asyncio.wait_for(app.state.runtime.registry.wait_loaded(), 300)
        for name, (path, content_type, body) in _requests().items():
            if await _send(app, path, content_type, body) != 200:  # warm-up: first-call paths excluded
                raise RuntimeError(f"{name}: the warm-up request failed")
            recorder.files, recorder.calls, recorder.hops = {}, Counter(), 0
            recorder.on = True
            status = await _send(app, path, content_type, body)
            recorder.on = False
            if status != 200:
                raise RuntimeError(f"{name}: status {status}")
            paths[name] = {
                "files": list(recorder.files),
                "file_count": len(recorder.files),
                "hops": recorder.hops,
                "model_lookups": sum(recorder.calls[q] for q in LOOKUPS),
                "readiness_checks": sum(recorder.calls[q] for q in READINESS),
            }
    sys.setprofile(None)
    threading.setprofile(None)
    return paths


def _run_at(rev: str) -> dict[str, Any]:
    """This script's measurement on the code at ``rev``, extracted beside it (same models, same requests)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="tar")
        env = {**os.environ, "PYTHONPATH": tmp}
        out = subprocess.run(
            [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True
        ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _report(before: dict[str, Any], after: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# What one request crosses in service/",
        "",
        f"Written by `python -m bench.request_path` at commit {meta['git_commit']} ({meta['started']},",
        f"{meta['cpu']}, load average {meta['load_average']}; the counts do not depend on load);",
        f"before: commit {meta['before']}. Counting: see the script's docstring (files of `service/` whose",
        "code ran for one warm request; hops = calls into a `service/` file from code outside it;",
        "lookups = `ModelRegistry.get` calls; readiness checks =",
        "`ModelRegistry.ready` / `ModelEntry.serving` calls).",
        "",
        "| request | files before | files after | hops before | hops after | lookups before | lookups after"
        " | readiness before | readiness after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in after:
        b, a = before[name], after[name]
        lines.append(
            f"| {name} | {b['file_count']} | {a['file_count']} | {b['hops']} | {a['hops']} | "
            f"{b['model_lookups']} | "
            f"{a['model_lookups']} | {b['readiness_checks']} | {a['readiness_checks']} |"
        )
    for name in after:
        lines += ["", f"## {name}", "", "before: " + ", ".join(f"`{f}`" for f in before[name]["files"])]
        lines += ["", "after: " + ", ".join(f"`{f}`" for f in after[name]["files"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default=BEFORE, help="the commit to compare against")
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity; the run is short")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_measure())))
        return
    sys.path.insert(0, str(ROOT))
    from bench.provenance import run_metadata

    meta = {
        **run_metadata(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "before": _git("rev-parse", "--short", args.before),
    }
    before = _run_at(args.before)
    after = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--child"],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "request_path.json").write_text(
        json.dumps({"meta": meta, "before": before, "after": after}, indent=2) + "\n"
    )
    report = _report(before, after, meta)
    (RESULTS / "request_path.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
