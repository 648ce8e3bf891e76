"""The output folder: ``part-NNNNN.parquet`` shards, their errors, and what ``--resume`` may trust.

A shard is complete only once its Parquet file has been written in full and renamed into place (its
errors are renamed in just before), so a crash leaves at most one shard's temporary files, which a
resume deletes and redoes. ``_job.json`` records what the rows depend on; a resume with other settings
is refused rather than mixing two jobs' rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from poolserve.extract.dataset import Item
from poolserve.extract.job import JobSpec
from poolserve.extract.prepare import ItemError

JOB_FILE = "_job.json"
ERRORS_FILE = "errors.jsonl"
_ERRORS_DIR = "_errors"
_TMP_PREFIX = ".tmp-"


class OutputError(Exception):
    """The output folder holds something this job must not overwrite or mix with, or cannot be created
    or written (a read-only or full file system, a path under a file)."""


def _reason(exc: OSError) -> str:
    """The OS's own words for ``exc`` (pyarrow's errors bury them in a longer message)."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


@dataclass(frozen=True)
class Shard:
    index: int
    items: list[Item]


def plan(items: Sequence[Item], shard_size: int) -> list[Shard]:
    """Consecutive runs of ``shard_size`` items: shard ``n`` is the same on every run and engine."""
    return [Shard(n, list(items[i : i + shard_size])) for n, i in enumerate(range(0, len(items), shard_size))]


def shard_path(out: Path, index: int) -> Path:
    return out / f"part-{index:05d}.parquet"


def _errors_path(out: Path, index: int) -> Path:
    return out / _ERRORS_DIR / f"part-{index:05d}.jsonl"


def _replace_atomically(target: Path, write: Callable[[Path], object]) -> None:
    tmp = target.with_name(_TMP_PREFIX + target.name)
    try:
        write(tmp)
        with tmp.open("rb") as handle:  # on disk before the rename makes it count
            os.fsync(handle.fileno())
        tmp.replace(target)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: give back what the half-written file holds
        raise


def write_shard(out: Path, index: int, rows: pa.Table, errors: Sequence[ItemError]) -> None:
    lines = "".join(json.dumps(asdict(e)) + "\n" for e in errors)
    try:
        _replace_atomically(_errors_path(out, index), lambda p: p.write_text(lines, encoding="utf-8"))
        _replace_atomically(shard_path(out, index), lambda p: pq.write_table(rows, p))
    except OSError as exc:
        raise OutputError(f"cannot write --output {out}: {_reason(exc)}") from None


def _digest(items: Iterable[Item]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.key, item.boxes, item.category_ids]).encode())
    return digest.hexdigest()


def open_output(out: Path, job: JobSpec, items: Sequence[Item], resume: bool) -> None:
    """Create the folder, or check that a resumed one belongs to this same job; drop stale temp files."""
    record = {"job": job.fingerprint(), "items": len(items), "items_sha256": _digest(items)}
    record_text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    try:
        _open_output(out, record_text, resume)
    except OSError as exc:
        raise OutputError(f"cannot create --output {out}: {_reason(exc)}") from None


def _open_output(out: Path, record_text: str, resume: bool) -> None:
    job_file = out / JOB_FILE
    if job_file.exists():
        if not resume:
            raise OutputError(f"{out} already holds an extraction; pass --resume or choose another folder")
        there, now = json.loads(job_file.read_text(encoding="utf-8")), json.loads(record_text)
        if there != now:
            raise OutputError(
                f"{out} holds another job ({'; '.join(_differences(there, now))}); not resuming: "
                "give the same model, options and inputs, or another --output"
            )
    elif out.exists() and any(out.iterdir()):
        raise OutputError(f"{out} is not empty and holds no extraction job")
    (out / _ERRORS_DIR).mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob(_TMP_PREFIX + "*"), *(out / _ERRORS_DIR).glob(_TMP_PREFIX + "*")]:
        stale.unlink()
    if not job_file.exists():
        job_file.write_text(record_text, encoding="utf-8")


def _differences(there: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What makes a recorded job another one, in the options' terms: ``top_k 5 there, 3 now``."""
    said = [
        f"{key} {json.dumps(there['job'].get(key))} there, {json.dumps(value)} now"
        for key, value in now["job"].items()
        if there.get("job", {}).get(key) != value
    ]
    if (there.get("items"), there.get("items_sha256")) != (now["items"], now["items_sha256"]):
        said.append(f"other images or boxes: {there.get('items')} there, {now['items']} now")
    return said or ["recorded by another version of poolserve extract"]


def pending(out: Path, shards: Sequence[Shard]) -> list[Shard]:
    return [s for s in shards if not shard_path(out, s.index).exists()]


def merge_errors(out: Path, shards: Sequence[Shard]) -> int:
    """``errors.jsonl``: every shard's errors in shard order; returns how many."""
    count = 0
    try:
        with (out / ERRORS_FILE).open("w", encoding="utf-8") as merged:
            for shard in shards:
                text = _errors_path(out, shard.index).read_text(encoding="utf-8")
                merged.write(text)
                count += text.count("\n")
    except OSError as exc:
        raise OutputError(f"cannot write --output {out}: {_reason(exc)}") from None
    return count
