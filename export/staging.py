"""Writing a repository entry all at once: files go to a hidden sibling folder, renamed into place last.

The service discovers only ``<name>/<digits>`` folders, so a half-written entry is never served, and a
failed export or import leaves the previous version untouched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from poolserve.repository.manifest import MODEL_FILENAME


class EntryExists(Exception):  # noqa: N818 - reads as what happened, like the service's domain errors
    """The entry is already there and replacing it was not asked for."""


@contextmanager
def staged_entry(repository: Path, name: str, version: int, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty folder; when the block succeeds it becomes ``<repository>/<name>/<version>``."""
    target = repository / name / str(version)
    if (target / MODEL_FILENAME).exists() and not overwrite:
        raise EntryExists(f"{target} already holds a model; pass overwrite to replace it")
    staging = target.with_name(f".{version}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
