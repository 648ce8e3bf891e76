"""One extraction job, whatever the engine: list the dataset, plan shards, open the output, run the
engine on the pending shards, merge the errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from poolserve.extract.dataset import IMAGE_SUFFIXES, DatasetError, build_items, list_images, read_boxes
from poolserve.extract.job import FeatureEncoding, JobSpec, LocalModel, ModelRef, find_model
from poolserve.extract.pipeline import ProgressSink
from poolserve.extract.prepare import InputLimits
from poolserve.extract.progress import ProgressReport
from poolserve.extract.shards import OutputError, Shard, merge_errors, open_output, pending, plan
from poolserve.repository.store import RepositoryError
from poolserve.service.settings import Settings

EngineName = Literal["local", "ray", "http"]


# The model lookup before the job starts: a server that does not answer then is most often a wrong URL,
# so say so within seconds (0.5 + 1 s of back-off) rather than after the client's full ~16 s. Requests of a
# running job keep the client's default retries, riding out a restart.
_LOOKUP_RETRIES = 2


class JobError(Exception):
    """The job cannot run (bad arguments, no such model, an output folder of another job, a server that
    does not answer)."""


@dataclass(frozen=True)
class ExtractRequest:
    name: str
    version: int | None
    images: str
    boxes: Path | None
    output: Path
    engine: EngineName = "local"
    encoding: FeatureEncoding = "float32"
    batch_size: int = 32
    workers: int = 2
    threads: int = 0  # local engine: onnxruntime intra-op threads; Ray actors run one each
    top_k: int = 5
    shard_size: int = 1000
    resume: bool = False
    repository: Path | None = None
    ray_address: str | None = None
    server: str | None = None
    api_key: str | None = None


def _check_server(server: str | None, api_key: str | None) -> str:
    """``--server`` and ``--api-key`` as the client can use them, refused here in the options' names
    rather than as an exception from deep in httpx."""
    if server is None:
        raise JobError("--engine http needs --server URL")
    from poolserve.client import checked_api_key, checked_base_url

    try:
        checked_base_url(server, "--server")
    except ValueError as exc:
        raise JobError(str(exc)) from None
    try:
        checked_api_key(api_key)
    except ValueError:
        raise JobError("--api-key holds characters no HTTP header can carry (non-ASCII, control)") from None
    return server


def _check_engine_options(request: ExtractRequest) -> None:
    """An option for another engine is a mistake to say, not to ignore: ``--server`` without
    ``--engine http`` would run the model here while the user believes the server does."""
    if request.server is not None and request.engine != "http":
        raise JobError(
            f"--server is for --engine http (this job's engine is {request.engine}): add --engine http"
        )
    if request.ray_address is not None and request.engine != "ray":
        raise JobError(
            f"--ray-address is for --engine ray (this job's engine is {request.engine}): add --engine ray"
        )


def _server_error(request: ExtractRequest, exc: Exception) -> JobError:
    from poolserve.client import Unauthorized

    if isinstance(exc, Unauthorized):  # the server's own advice is for curl; say it in this tool's terms
        given = "the --api-key given is wrong" if request.api_key else "no API key was given"
        return JobError(f"{request.server}: 401: {given}; pass --api-key or set POOLSERVE_API_KEY")
    return JobError(f"{request.server}: {exc}")


def _model_ref(request: ExtractRequest, settings: Settings) -> tuple[ModelRef, LocalModel | None]:
    if request.engine == "http":
        server = _check_server(request.server, request.api_key)
        from poolserve.client import PoolserveClient, PoolserveError
        from poolserve.extract.http_engine import model_ref

        try:
            with PoolserveClient(server, request.api_key, retries=_LOOKUP_RETRIES) as client:
                info = client.model(request.name).info
            return model_ref(info, request.name, request.version), None
        except (PoolserveError, ValueError) as exc:
            raise _server_error(request, exc) from None
    try:
        local = find_model(request.repository or settings.repository, request.name, request.version)
    except RepositoryError as exc:
        raise JobError(str(exc)) from None
    return ModelRef.of(local.manifest), local


def run_job(request: ExtractRequest, on_progress: ProgressSink | None = None) -> int:
    """Runs the job; returns how many inputs ``errors.jsonl`` lists. ``on_progress`` hears what the
    progress display hears (finished batches; finished shards with Ray)."""
    _check_engine_options(request)
    # The service's own limits (POOLSERVE_* variables and .env apply), so every engine refuses alike.
    settings = Settings()
    model, local = _model_ref(request, settings)
    if model.is_region and request.boxes is None:
        raise JobError(f"{model.name} is a region-features model: pass --boxes (COCO .json or .jsonl)")
    if not model.is_region and request.boxes is not None:
        raise JobError(f"{model.name} is a classifier: --boxes is for region-features models only")
    try:
        table = read_boxes(request.boxes) if model.is_region and request.boxes else None
        items = build_items(list_images(request.images), table)
    except DatasetError as exc:
        raise JobError(str(exc)) from None
    if not items:  # a wrong folder or an empty list must not look like a finished job
        raise JobError(
            f"--images {request.images}: no images found (a folder is searched for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files; a .txt list names one image a line)"
        )
    job = JobSpec(
        model=model,
        batch_size=request.batch_size,
        top_k=request.top_k,
        encoding=request.encoding,
        shard_size=request.shard_size,
        with_categories=table is not None and table.category_ids is not None,
        limits=InputLimits(
            settings.max_body_bytes,
            settings.max_image_pixels,
            settings.max_boxes_per_request,
            settings.reduced_jpeg_decode,
        ),
    )
    shards = plan(items, request.shard_size)
    if request.output.exists() and not request.output.is_dir():
        raise JobError(f"--output {request.output} is a file; extraction writes a folder of shards")
    try:
        open_output(request.output, job, items, request.resume)
    except OutputError as exc:
        raise JobError(str(exc)) from None
    todo = pending(request.output, shards)
    report = ProgressReport(
        len(items),
        len(items) - sum(len(s.items) for s in todo),
        request.engine,
        on_progress,
        with_boxes=model.is_region,
    )
    try:
        _run_engine(request, job, local, todo, report)
        return merge_errors(request.output, shards)
    except OutputError as exc:  # e.g. the disk filled up: each finished shard is whole, so say how to go on
        raise JobError(f"{exc} (the shards already written are kept: --resume continues)") from None
    finally:
        report.close()


def _run_engine(
    request: ExtractRequest,
    job: JobSpec,
    local: LocalModel | None,
    todo: list[Shard],
    report: ProgressReport,
) -> None:
    if request.engine == "http":
        _run_http(request, job, todo, report)
        return
    assert local is not None
    if request.engine == "ray":
        try:
            from poolserve.extract.ray_engine import run_ray
        except ImportError as exc:
            raise JobError(f"--engine ray needs Ray: pip install 'poolserve[ray]' ({exc})") from None
        run_ray(local, job, request.output, todo, request.workers, request.ray_address, report)
        return
    from poolserve.extract.local import run_local

    run_local(local, job, request.output, todo, request.workers, request.threads, report)


def _run_http(request: ExtractRequest, job: JobSpec, todo: list[Shard], report: ProgressReport) -> None:
    from poolserve.client import AsyncPoolserveClient, PoolserveError
    from poolserve.extract.http_engine import run_http

    async def go() -> None:
        async with AsyncPoolserveClient(
            str(request.server), request.api_key, max_connections=request.workers
        ) as client:
            await run_http(client, job, request.output, todo, request.workers, report)

    try:
        asyncio.run(go())
    except PoolserveError as exc:  # bad inputs are listed per image; this is the server or the network
        raise JobError(
            f"{_server_error(request, exc)} (the shards already written are kept: --resume continues)"
        ) from None
