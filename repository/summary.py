"""Print the model repository as a markdown table (the README's "Shipped models" table comes from here).

``python -m poolserve.repository.summary [ROOT]``
"""

from __future__ import annotations

import sys
from pathlib import Path

from poolserve.repository.manifest import Manifest
from poolserve.repository.store import RepositoryError, discover, latest_versions, read_manifest

SHIFTED_PREFIX = "shifted_"


def _quality(manifest: Manifest, shifted: bool) -> str:
    """Held-out figures, or the shifted held-out ones (metrics named ``shifted_*``)."""
    chosen = [e for e in manifest.evaluations if e.metric.startswith(SHIFTED_PREFIX) == shifted]
    return (
        "; ".join(f"{e.metric.removeprefix(SHIFTED_PREFIX)} {e.value:.3f} (n={e.samples})" for e in chosen)
        or "—"
    )


def _parity(manifest: Manifest) -> str:
    """The max abs error with what it was measured against: a converted model is compared with its
    PyTorch original; an imported ONNX file has none, so its check is onnxruntime's batched rows against
    single-sample runs."""
    check = manifest.verification
    against = "vs PyTorch" if check.reference.startswith("torch") else "batched vs single, onnxruntime"
    return f"{check.max_abs_error:.1e} ({against}; gate {check.tolerance:.0e})"


def markdown_table(root: Path) -> str:
    rows = [
        "| model | task | input | quality on held-out data | on shifted held-out data "
        "| parity: max abs error | source, licence |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for location in latest_versions(discover(root)):
        m = read_manifest(location)
        p = m.preprocessing
        roi = f", {m.roi.op} {m.roi.output_size[0]}×{m.roi.output_size[1]}" if m.roi else ""
        rows.append(
            f"| `{m.name}` v{m.version} | {m.task.value}{roi} | {p.color_mode} {p.height}×{p.width} "
            f"| {_quality(m, shifted=False)} | {_quality(m, shifted=True)} "
            f"| {_parity(m)} | {m.provenance.source}, "
            f"{m.provenance.license.split(' (')[0].split(';')[0]} |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "model_repository")
    try:
        print(markdown_table(root))
    except RepositoryError as exc:
        usage = "python -m poolserve.repository.summary PATH"
        print(f"summary: {exc}; give its folder: {usage}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
