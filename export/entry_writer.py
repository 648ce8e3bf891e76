"""Writing a repository entry all at once: the model file and the manifest built from its hash.

Every kind of entry (trained, converted, imported, quantized) is written here. The manifest depends on the
written file (its sha256), so callers hand over an :class:`EntryDescription` and the writer completes it.
Files go to a hidden sibling folder, renamed into place last: the service discovers only
``<name>/<digits>`` folders, so a half-written entry is never served, and a failed export or import leaves
the previous version untouched and removes the folders it created (a repository on a full disk keeps no
empty ``<name>`` folder). Torch-free.
"""

from __future__ import annotations

import contextlib
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


class EntryNotWritten(Exception):  # noqa: N818 - reads as what happened, like EntryExists
    """The file system refused the entry (read-only, full, a path through a file); nothing was left behind."""

    def __init__(self, target: Path, cause: OSError) -> None:
        reason = cause.strerror or type(cause).__name__
        # The path the OS refused, when it is above the entry (often the repository itself); inside the
        # entry's folder it is only the staging folder, a name the user never gave.
        refused = Path(cause.filename) if isinstance(cause.filename, str) else None
        where = f" ({refused})" if refused is not None and target.parent not in refused.parents else ""
        super().__init__(f"cannot write the model repository entry {target}: {reason}{where}")
        self.target = target


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        # Never made, or another writer has put something in it since: either way it stays.
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextmanager
def _staged_entry(repository: Path, name: str, version: int, overwrite: bool) -> Iterator[Path]:
    """Yield an empty folder; when the block succeeds it becomes ``<repository>/<name>/<version>``."""
    target = repository / name / str(version)
    if (target / MODEL_FILENAME).exists() and not overwrite:
        raise EntryExists(target)
    staging = target.with_name(f".{version}.staging")
    created = _missing_folders(staging.parent)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        yield staging
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise


def write_entry(repository: Path, model: bytes, entry: EntryDescription, overwrite: bool = False) -> Manifest:
    """Stage ``model.onnx`` and its manifest, then move both to ``<repository>/<name>/<version>``.

    Raises :class:`EntryExists` when that entry holds a model and ``overwrite`` is false, and
    :class:`EntryNotWritten` when the file system refuses it (read-only, full, a path through a file).
    """
    try:
        with _staged_entry(repository, entry.name, entry.version, overwrite) as staging:
            path = staging / MODEL_FILENAME
            path.write_bytes(model)
            # A model served by another user (the container's) must be readable whatever our umask.
            path.chmod(0o644)
            manifest = entry.manifest(sha256_file(path))
            write_manifest(staging, manifest)
    except OSError as exc:
        raise EntryNotWritten(repository / entry.name / str(entry.version), exc) from exc
    return manifest
