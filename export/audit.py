"""Re-checking a committed repository entry against its manifest (what ``poolserve verify`` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from export.evaluate import measure
from export.verify import check_graph, session_for
from models.mnist import held_out_split
from repository.manifest import Task
from repository.store import EntryLocation, read_manifest, verified_model_path

ACCURACY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class FigureCheck:
    """A recorded figure next to its re-measurement (``None`` when one side does not have it)."""

    metric: str
    recorded: float | None
    measured: float | None
    samples: int

    @property
    def ok(self) -> bool:
        if self.recorded is None or self.measured is None:
            return False
        return abs(self.recorded - self.measured) <= ACCURACY_TOLERANCE


@dataclass(frozen=True)
class AuditResult:
    name: str
    figures: list[FigureCheck]

    @property
    def ok(self) -> bool:
        return bool(self.figures) and all(f.ok for f in self.figures)

    def measured(self, metric: str) -> float:
        (value,) = [f.measured for f in self.figures if f.metric == metric and f.measured is not None]
        return value

    def summary(self) -> str:
        parts = []
        for f in self.figures:
            measured = "missing" if f.measured is None else f"{f.measured:.4f}"
            recorded = "missing" if f.recorded is None else f"{f.recorded:.4f}"
            parts.append(f"{f.metric} {measured} (manifest {recorded}) {'ok' if f.ok else 'MISMATCH'}")
        return f"{self.name}: sha256 ok, checker ok, " + "; ".join(parts)


def audit_entry(repository: Path, name: str, version: int = 1) -> AuditResult:
    """Every figure the manifest records is measured again (held-out and shifted held-out sets)."""
    location = EntryLocation(name, version, repository / name / str(version))
    manifest = read_manifest(location)
    path = verified_model_path(location, manifest)
    check_graph(onnx.load(path))
    session = session_for(path.read_bytes())
    measured = {
        f.metric: f for f in measure(session, manifest.task is Task.CLASSIFICATION, held_out_split().test)
    }
    recorded = {e.metric: e.value for e in manifest.evaluations}
    checks = [
        FigureCheck(
            metric,
            recorded.get(metric),
            measured[metric].value if metric in measured else None,
            measured[metric].samples if metric in measured else 0,
        )
        for metric in [*measured, *(m for m in recorded if m not in measured)]
    ]
    return AuditResult(name, checks)
