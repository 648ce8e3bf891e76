"""Reading and writing model repository entries: ``<root>/<name>/<version>/{model.onnx,manifest.json}``."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from poolserve.repository.manifest import MANIFEST_FILENAME, NAME_PATTERN, Manifest

_NAME = re.compile(NAME_PATTERN)
_CHUNK = 1 << 20


class RepositoryError(Exception):
    """An entry that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class EntryLocation:
    name: str
    version: int
    directory: Path

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_FILENAME


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def discover(root: Path, on_skip: Callable[[Path, str], None] | None = None) -> list[EntryLocation]:
    """Every ``<name>/<version>`` folder under ``root`` that can be an entry, newest version last.

    Files, and folders whose names start with ``.`` (an export's staging folder, ``.git``), are passed
    over in silence. Any other folder that cannot be an entry (a name the service does not take, a
    version that is not a number, a version folder without a manifest, such as one being filled) is
    skipped, and ``on_skip(folder, why)`` hears of it: an operator's model must not just be missing.
    A version folder without a manifest (one being filled, say) does not hide the older versions beside
    it; a model with no manifest at all is still found, so that loading it fails with the reason.
    """
    if not root.is_dir():
        raise RepositoryError(f"model repository {root} is not a directory")
    skip = on_skip or (lambda folder, why: None)
    found: list[EntryLocation] = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not _NAME.match(model_dir.name):
            skip(model_dir, "not a model name (lowercase letters, digits, '.', '_', '-'; at most 64)")
            continue
        versions: list[EntryLocation] = []
        bare: list[EntryLocation] = []  # version folders without a manifest
        for version_dir in sorted(
            p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            name = version_dir.name
            if not (name.isdigit() and str(int(name)) == name and int(name) >= 1):
                skip(version_dir, "not a version number (1, 2, ...)")
                continue
            location = EntryLocation(model_dir.name, int(name), version_dir)
            (versions if (version_dir / MANIFEST_FILENAME).is_file() else bare).append(location)
        if versions:
            for location in bare:
                skip(location.directory, f"holds no {MANIFEST_FILENAME}; older versions serve")
        elif bare:  # nothing else to serve: listed, and failed with the reason, where the API shows it
            versions.append(max(bare, key=lambda e: e.version))
        elif not any(p.name.startswith(".") for p in model_dir.iterdir()):  # not an export in progress
            skip(model_dir, "holds no version folder (<name>/1/manifest.json)")
        found.extend(versions)
    return sorted(found, key=lambda e: (e.name, e.version))


def latest_versions(entries: list[EntryLocation]) -> list[EntryLocation]:
    latest: dict[str, EntryLocation] = {}
    for entry in entries:
        if entry.name not in latest or entry.version > latest[entry.name].version:
            latest[entry.name] = entry
    return list(latest.values())


def read_manifest(location: EntryLocation) -> Manifest:
    """Parse and cross-check a manifest against the folder it lives in (name, version)."""
    try:
        raw = location.manifest_path.read_bytes()
    except FileNotFoundError as exc:
        raise RepositoryError(f"{location.manifest_path}: manifest is missing") from exc
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:  # one line, without the inputs and documentation links pydantic adds
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise RepositoryError(f"{location.manifest_path}: invalid manifest: {problems}") from exc
    if (manifest.name, manifest.version) != (location.name, location.version):
        raise RepositoryError(
            f"{location.manifest_path}: says {manifest.name}/{manifest.version}, "
            f"but lives in {location.name}/{location.version}"
        )
    return manifest


def verified_model_path(location: EntryLocation, manifest: Manifest) -> Path:
    """The model file's path, once its sha256 matches the manifest's."""
    path = location.directory / manifest.model_file
    if path.parent != location.directory:
        raise RepositoryError(f"{location.manifest_path}: model_file must be a plain file name")
    if not path.is_file():
        raise RepositoryError(f"{path}: model file is missing")
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise RepositoryError(f"{path}: sha256 {actual} does not match the manifest's {manifest.sha256}")
    return path


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    path = directory / MANIFEST_FILENAME
    # Entries exported before the pooling audit or quantization existed keep their bytes: None is not written.
    exclude = {name for name in ("pooling", "quantization") if getattr(manifest, name) is None} or None
    text = json.dumps(manifest.model_dump(mode="json", exclude=exclude), indent=2, sort_keys=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path
