"""Re-checking a committed repository entry against its manifest (what ``poolserve verify`` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from export.evaluate import classifier_accuracy, region_accuracy
from export.verify import check_graph, session_for
from models.mnist import held_out_split
from models.train_region import evaluation_canvases
from repository.manifest import Task
from repository.store import EntryLocation, read_manifest, verified_model_path

ACCURACY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class AuditResult:
    name: str
    recorded: float
    measured: float
    samples: int

    @property
    def ok(self) -> bool:
        return abs(self.recorded - self.measured) <= ACCURACY_TOLERANCE

    def summary(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        measured = f"held-out {self.measured:.4f} (manifest {self.recorded:.4f})"
        return f"{self.name}: sha256 ok, checker ok, {measured} {verdict}"


def audit_entry(repository: Path, name: str, version: int = 1) -> AuditResult:
    location = EntryLocation(name, version, repository / name / str(version))
    manifest = read_manifest(location)
    path = verified_model_path(location, manifest)
    check_graph(onnx.load(path))
    session = session_for(path.read_bytes())
    splits = held_out_split()
    if manifest.task is Task.CLASSIFICATION:
        measured = classifier_accuracy(session, splits.test)
    else:
        measured = region_accuracy(session, evaluation_canvases(splits.test))
    return AuditResult(name, manifest.evaluations[0].value, measured.value, measured.samples)
