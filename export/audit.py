"""Re-checking a committed repository entry against its manifest (what ``poolserve verify`` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from export.evaluate import classifier_accuracy, region_accuracy
from export.verify import check_graph, session_for
from models.mnist import held_out_split
from models.train_region import evaluation_canvases
from repository.manifest import EVALUATION_SAMPLE_SLACK, Evaluation, Task
from repository.store import EntryLocation, read_manifest, verified_model_path


@dataclass(frozen=True)
class AuditResult:
    """sha256 and onnx.checker passed (they raise otherwise); the accuracy re-measured with onnxruntime.

    The accuracy is a measurement, not a hash: on another CPU one held-out sample near a tie may flip,
    which :meth:`Evaluation.agrees_with` accepts (``EVALUATION_SAMPLE_SLACK``) and the summary names.
    """

    name: str
    recorded: Evaluation
    measured: float
    samples: int

    @property
    def differing(self) -> int:
        return round(abs(self.recorded.value - self.measured) * self.samples)

    @property
    def ok(self) -> bool:
        return self.recorded.agrees_with(self.measured, self.samples)

    def summary(self) -> str:
        if not self.ok:
            verdict = f"MISMATCH (more than {EVALUATION_SAMPLE_SLACK} of {self.samples} differ)"
        elif self.differing:
            verdict = f"ok ({self.differing} of {self.samples} differs: within the allowance)"
        else:
            verdict = "ok"
        measured = f"held-out {self.measured:.4f} on {self.samples} (manifest {self.recorded.value:.4f})"
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
    return AuditResult(name, manifest.evaluations[0], measured.value, measured.samples)
