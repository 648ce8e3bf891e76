"""Writing a repository entry all at once: the model file and the manifest built from its hash.

Every kind of entry (trained, converted, imported, quantized) is written here. The manifest depends on the
written file (its sha256), so callers hand over an :class:`EntryDescription` and the writer completes it.
Files go to a hidden sibling folder, renamed into place last: the service discovers only
``<name>/<digits>`` folders, so a half-written entry is never served, and a failed export or import leaves
the previous version untouched. Torch-free.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from poolserve.export.manifest_builder import EntryDescription
from poolserve.repository.manifest import MODEL_FILENAME, Manifest
from poolserve.repository.store import sha256_file, write_manifest


class EntryExists(Exception):  # noqa: N818 - reads as what happened, like the service's domain errors
    """The entry is already there and replacing it was not asked for."""

    def __init__(self, target: Path) -> None:
        # Read by command-line users (each command that can meet this has --overwrite) and API callers.
        super().__init__(
            f"{target} already holds a model; pass --overwrite (overwrite=True in Python) to replace it"
        )
        self.target = target


@contextmanager
def _staged_entry(repository: Path, name: str, version: int, overwrite: bool) -> Iterator[Path]:
    """Yield an empty folder; when the block succeeds it becomes ``<repository>/<name>/<version>``."""
    target = repository / name / str(version)
    if (target / MODEL_FILENAME).exists() and not overwrite:
        raise EntryExists(target)
    staging = target.with_name(f".{version}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_entry(repository: Path, model: bytes, entry: EntryDescription, overwrite: bool = False) -> Manifest:
    """Stage ``model.onnx`` and its manifest, then move both to ``<repository>/<name>/<version>``.

    Raises :class:`EntryExists` when that entry holds a model and ``overwrite`` is false.
    """
    with _staged_entry(repository, entry.name, entry.version, overwrite) as staging:
        path = staging / MODEL_FILENAME
        path.write_bytes(model)
        # A model served by another user (the container's) must be readable whatever our umask.
        path.chmod(0o644)
        manifest = entry.manifest(sha256_file(path))
        write_manifest(staging, manifest)
    return manifest
