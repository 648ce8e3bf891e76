"""Re-checking a committed repository entry against its manifest (what ``poolserve verify`` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from poolserve.export.evaluate import measure
from poolserve.export.parity import check_graph, session_for
from poolserve.models.mnist import held_out_split
from poolserve.repository.manifest import EVALUATION_SAMPLE_SLACK, Evaluation, Task
from poolserve.repository.store import EntryLocation, read_manifest, verified_model_path


@dataclass(frozen=True)
class FigureCheck:
    """A recorded figure next to its re-measurement (``None`` when one side does not have it).

    A figure is a measurement, not a hash: on another CPU one sample near a tie may flip, which
    :meth:`Evaluation.agrees_with` accepts (``EVALUATION_SAMPLE_SLACK``) and the summary names.
    """

    metric: str
    recorded: Evaluation | None
    measured: float | None
    samples: int

    @property
    def differing(self) -> int:
        if self.recorded is None or self.measured is None:
            return 0
        return round(abs(self.recorded.value - self.measured) * self.samples)

    @property
    def ok(self) -> bool:
        if self.recorded is None or self.measured is None:
            return False
        return self.recorded.agrees_with(self.measured, self.samples)

    def summary(self) -> str:
        measured = "missing" if self.measured is None else f"{self.measured:.4f}"
        recorded = "missing" if self.recorded is None else f"{self.recorded.value:.4f}"
        if not self.ok:
            verdict = f"MISMATCH (more than {EVALUATION_SAMPLE_SLACK} of {self.samples} differ)"
        elif self.differing:
            verdict = f"ok ({self.differing} of {self.samples} differs: within the allowance)"
        else:
            verdict = "ok"
        return f"{self.metric} {measured} on {self.samples} (manifest {recorded}) {verdict}"


@dataclass(frozen=True)
class EntryVerification:
    """sha256 and onnx.checker passed (they raise otherwise); every figure re-measured with onnxruntime."""

    name: str
    figures: list[FigureCheck]

    @property
    def ok(self) -> bool:
        return bool(self.figures) and all(f.ok for f in self.figures)

    def measured(self, metric: str) -> float:
        (value,) = [f.measured for f in self.figures if f.metric == metric and f.measured is not None]
        return value

    def summary(self) -> str:
        return f"{self.name}: sha256 ok, checker ok, " + "; ".join(f.summary() for f in self.figures)


def verify_entry(repository: Path, name: str, version: int = 1) -> EntryVerification:
    location = EntryLocation(name, version, repository / name / str(version))
    manifest = read_manifest(location)
    path = verified_model_path(location, manifest)
    check_graph(onnx.load(path))
    session = session_for(path.read_bytes())
    measured = {
        f.metric: f for f in measure(session, manifest.task is Task.CLASSIFICATION, held_out_split().test)
    }
    recorded = {e.metric: e for e in manifest.evaluations}
    # Every figure the manifest records must be re-measured and agree; a variant (quantized, say) that
    # records fewer figures than the float32 entry is held to the ones it records.
    checks = [
        FigureCheck(
            metric,
            recorded[metric],
            measured[metric].value if metric in measured else None,
            measured[metric].samples if metric in measured else 0,
        )
        for metric in recorded
    ]
    return EntryVerification(name, checks)
