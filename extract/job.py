"""What a job is: the model it runs and the options that shape its rows. Plain, picklable dataclasses, so
Ray ships them to its workers as they are."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from poolserve.extract.prepare import InputLimits
from poolserve.repository.manifest import Manifest, Task
from poolserve.repository.store import RepositoryError, discover, read_manifest, verified_model_path

FeatureEncoding = Literal["float32", "float16"]


@dataclass(frozen=True)
class ModelRef:
    """The model's identity and output shape, as a manifest or the HTTP model listing gives them."""

    name: str
    version: int
    sha256: str
    task: str  # poolserve.repository.manifest.Task's value
    feature_dim: int | None  # None for classifiers
    has_scores: bool  # class scores out: classifiers always, region models when exported with them

    @property
    def is_region(self) -> bool:
        return self.task == Task.REGION_FEATURES.value

    @staticmethod
    def of(manifest: Manifest) -> ModelRef:
        return ModelRef(
            manifest.name,
            manifest.version,
            manifest.sha256,
            manifest.task.value,
            manifest.feature_dim,
            manifest.io.scores is not None,
        )


@dataclass(frozen=True)
class JobSpec:
    model: ModelRef
    batch_size: int
    top_k: int
    encoding: FeatureEncoding
    shard_size: int
    with_categories: bool  # a COCO box file: its category ids become a column
    limits: InputLimits

    def fingerprint(self) -> dict[str, object]:
        """What must not change between a run and its ``--resume`` (batch size may: rows do not depend
        on it beyond float rounding)."""
        spec = asdict(self)
        spec.pop("batch_size")
        return spec


@dataclass(frozen=True)
class LocalModel:
    """A model in a repository folder, as the local and Ray engines load it."""

    manifest: Manifest
    path: Path  # the verified model file


def parse_model_arg(arg: str) -> tuple[str, int | None]:
    """``MODEL`` or ``MODEL:VERSION``."""
    name, colon, version = arg.partition(":")
    if colon and not version.isdigit():  # "MODEL:" too: a version meant and left out
        raise ValueError(f"{arg!r}: the version after ':' must be a number")
    return name, int(version) if version else None


def find_model(repository: Path, name: str, version: int | None) -> LocalModel:
    """The named version (or the newest) of a model, its file checked against the manifest's sha256."""
    found = [loc for loc in discover(repository) if loc.name == name]
    if version is not None:
        found = [loc for loc in found if loc.version == version]
    if not found:
        wanted = f"{name} version {version}" if version is not None else name
        raise RepositoryError(f"no model {wanted} in {repository}")
    location = found[-1]  # discover sorts by version
    manifest = read_manifest(location)
    return LocalModel(manifest, verified_model_path(location, manifest))
