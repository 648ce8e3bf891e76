"""Writing a torch export as a repository entry: one staged writer and the manifest parts every export shares.

The manifest depends on the written file (its sha256), so callers hand over a function from the hash to
the manifest; the file and the manifest appear together, or not at all (``poolserve.export.staging``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import onnx
import onnxruntime as ort
import torch

from poolserve.export.onnx_export import EXPORTER, OPSET
from poolserve.export.staging import staged_entry
from poolserve.export.verify import InputCase, ParityResult
from poolserve.repository.manifest import MODEL_FILENAME, Manifest, Provenance, Verification
from poolserve.repository.store import sha256_file, write_manifest


def write_entry(
    repository: Path,
    name: str,
    version: int,
    proto: onnx.ModelProto,
    manifest_for: Callable[[str], Manifest],
    overwrite: bool = False,
) -> Manifest:
    """Stage ``model.onnx`` and its manifest (built from the file's sha256), then move both into place."""
    with staged_entry(repository, name, version, overwrite) as staging:
        path = staging / MODEL_FILENAME
        path.write_bytes(proto.SerializeToString())
        # A model served by another user (the container's) must be readable whatever our umask.
        path.chmod(0o644)
        manifest = manifest_for(sha256_file(path))
        write_manifest(staging, manifest)
    return manifest


def parity_verification(
    parity: ParityResult, cases: Sequence[InputCase], tolerance: float, reference: str
) -> Verification:
    """What the parity check compared: batch sizes and box counts are read off the cases themselves."""
    return Verification(
        reference=reference,
        max_abs_error=parity.max_abs_error,
        tolerance=tolerance,
        batch_sizes=sorted({len(case["images"]) for case in cases}),
        box_counts=sorted({len(case["boxes"]) for case in cases if "boxes" in case}),
        onnx_checker=True,
    )


def torch_provenance(
    source: Literal["trained", "converted", "imported"], description: str, license: str, weights_origin: str
) -> Provenance:
    """Provenance of a graph this process exported: exporter, opset and library versions filled in."""
    return Provenance(
        source=source,
        description=description,
        license=license,
        weights_origin=weights_origin,
        exporter=EXPORTER,
        opset=OPSET,
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
        onnxruntime_version=ort.__version__,
    )
