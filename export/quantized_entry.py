"""A quantized graph as a repository entry: its parity against the float32 graph, the gate it must pass,
and its manifest (the float32 entry's, with the quantization recorded and the verification replaced).

Why the tolerance is not the float32 one (1e-4 to 1e-5 against PyTorch): a float32 export differs from
eager PyTorch by rounding order only, while int8 rounds every activation to 1/256 of its calibrated range
and fp16 keeps 11 significant bits. Their error grows with the size of the outputs, so the tolerance is a
share of the largest float32 output on the compared inputs, and the gate that matters is the top-1
agreement with float32 on real images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import onnx
import onnxruntime as ort

from poolserve.export.manifest_builder import EntryDescription, described, parity_verification
from poolserve.export.parity import InputCase, check_graph, session_for
from poolserve.export.quantize import QuantizedGraph
from poolserve.repository.manifest import Evaluation, Manifest, Quantization, QuantizationMode

# Largest error, as a share of the largest |float32 output|, before an export is refused.
TOLERANCE_SHARE: dict[QuantizationMode, float] = {"int8": 0.5, "fp16": 0.01}
# Fewest rows (images, or boxes of region models) whose arg-max must equal float32's.
AGREEMENT_FLOOR: dict[QuantizationMode, float] = {"int8": 0.95, "fp16": 0.99}


class QuantizationError(Exception):
    """The reduced-precision graph strays too far from float32; the message says how far."""


@dataclass(frozen=True)
class QuantizedParity:
    max_abs_error: float
    tolerance: float
    top1_agreement: float | None  # None: the graph has no scores output
    rows: int


def measure_parity(
    reference: onnx.ModelProto,
    candidate: onnx.ModelProto,
    cases: Sequence[InputCase],
    mode: QuantizationMode,
    scores_output: str | None,
) -> QuantizedParity:
    """Max abs error over every output and the arg-max agreement of ``scores_output``, on ``cases``."""
    if not cases:
        raise ValueError("parity needs at least one input case")
    expected_session, got_session = session_for(reference), session_for(candidate)
    names = [o.name for o in expected_session.get_outputs()]
    error, largest, agreeing, rows = 0.0, 0.0, 0, 0
    for case in cases:
        expected = dict(zip(names, expected_session.run(names, case), strict=True))
        got = dict(zip(names, got_session.run(names, case), strict=True))
        for name in names:
            if expected[name].size:
                difference = np.abs(got[name].astype(np.float64) - expected[name].astype(np.float64))
                error = max(error, float(difference.max()))
                largest = max(largest, float(np.abs(expected[name]).max()))
        if scores_output is not None and expected[scores_output].size:
            agreeing += int((got[scores_output].argmax(1) == expected[scores_output].argmax(1)).sum())
            rows += len(expected[scores_output])
    agreement = agreeing / rows if scores_output is not None and rows else None
    return QuantizedParity(error, TOLERANCE_SHARE[mode] * largest, agreement, rows)


def gate(parity: QuantizedParity, mode: QuantizationMode) -> None:
    """Raise :class:`QuantizationError` unless the graph is within tolerance and above the floor."""
    if not np.isfinite(parity.max_abs_error) or parity.max_abs_error > parity.tolerance:
        raise QuantizationError(
            f"{mode}: max abs error against float32 {parity.max_abs_error:.3g} > tolerance "
            f"{parity.tolerance:.3g} ({TOLERANCE_SHARE[mode]:g} x the largest float32 output)"
        )
    floor = AGREEMENT_FLOOR[mode]
    if parity.top1_agreement is not None and parity.top1_agreement < floor:
        raise QuantizationError(
            f"{mode}: top-1 agrees with float32 on {parity.top1_agreement:.1%} of {parity.rows} rows, "
            f"below the floor {floor:.0%}; calibrate on more representative images or keep float32"
        )


def check_runs(graph: QuantizedGraph) -> ort.InferenceSession:
    """onnx.checker, then a CPU session: the service must be able to load what is written."""
    check_graph(graph.proto)
    return session_for(graph.proto)


@dataclass(frozen=True)
class Calibration:
    """What int8 ranges were calibrated on, for the manifest (fp16 needs none)."""

    description: str | None
    samples: int


def quantized_description(
    source: Manifest,
    *,
    name: str,
    float32_sha256: str,
    graph: QuantizedGraph,
    parity: QuantizedParity,
    cases: Sequence[InputCase],
    calibration: Calibration,
    compared_on: str,
    evaluations: Sequence[Evaluation] = (),
    version: int = 1,
) -> EntryDescription:
    """``source`` (the float32 entry's manifest) with the quantization recorded and verification replaced."""
    reference = f"float32 graph sha256 {float32_sha256[:12]} on onnxruntime {ort.__version__} CPU"
    quantization = Quantization(
        mode=graph.mode,
        method=graph.method,
        float32_sha256=float32_sha256,
        calibration=calibration.description if graph.mode == "int8" else None,
        calibration_samples=calibration.samples if graph.mode == "int8" else 0,
        kept_float32=graph.kept_float32,
        compared_on=compared_on,
        top1_agreement=parity.top1_agreement,
        agreement_floor=AGREEMENT_FLOOR[graph.mode] if parity.top1_agreement is not None else None,
    )
    provenance = source.provenance.model_copy(
        update={
            "description": f"{graph.mode} variant of a float32 export: {source.provenance.description}",
            "onnxruntime_version": ort.__version__,
        }
    )
    return replace(
        described(source),
        name=name,
        version=version,
        description=f"{source.description} ({graph.mode})",
        verification=parity_verification(reference, parity.max_abs_error, parity.tolerance, cases),
        provenance=provenance,
        quantization=quantization,
        evaluations=list(evaluations),
    )
