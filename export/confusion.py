"""Confusion matrices of the committed digit models, held-out and shifted held-out, as PNG pictures.

``python -m poolserve.export.confusion [--repository model_repository] [--output docs/images]`` writes
``confusion-<model>.png`` for every shipped digit model, measured with onnxruntime on the committed ONNX
files and the same evaluation sets the manifests' figures come from (needs matplotlib: the dev extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from numpy.typing import NDArray

DEFAULT_OUTPUT = Path("docs/images")


def confusion_matrix(
    truth: NDArray[np.int64], predicted: NDArray[np.int64], classes: int
) -> NDArray[np.int64]:
    """Rows: true class (0..9); columns: predicted class (0..classes-1)."""
    matrix = np.zeros((10, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def _draw(path: Path, name: str, panels: list[tuple[str, NDArray[np.int64]]], labels: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), layout="constrained")
    for axis, (title, matrix) in zip(np.atleast_1d(axes), panels, strict=True):
        rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                colour = "white" if rates[row, column] > 0.5 else "black"
                axis.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)
        accuracy = np.trace(matrix[:, :10]) / max(int(matrix.sum()), 1)
        axis.set_title(f"{title}: {accuracy:.3f} (n={int(matrix.sum())})", fontsize=10)
        axis.set_xticks(range(matrix.shape[1]), [label[:2] for label in labels[: matrix.shape[1]]])
        axis.set_yticks(range(10), labels[:10])
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
    figure.suptitle(name)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_confusion_pictures(repository: Path, output: Path) -> list[Path]:
    from poolserve.export.evaluate import classifier_predictions, region_predictions
    from poolserve.export.parity import session_for
    from poolserve.models.evaluation_sets import held_out_regions, shifted_digits, shifted_regions
    from poolserve.models.mnist import held_out_split
    from poolserve.models.zoo import SPECS
    from poolserve.repository.store import discover, latest_versions, read_manifest, verified_model_path

    test = held_out_split().test
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for location in latest_versions(discover(repository)):
        if location.name not in SPECS:
            continue
        manifest = read_manifest(location)
        session = session_for(verified_model_path(location, manifest).read_bytes())
        classes = len(manifest.labels)
        if SPECS[location.name].task == "classification":
            shifted = shifted_digits(test)
            panels = [
                (
                    "held-out",
                    confusion_matrix(test.labels, classifier_predictions(session, test.images), classes),
                ),
                (
                    "shifted held-out",
                    confusion_matrix(
                        shifted.labels, classifier_predictions(session, shifted.images), classes
                    ),
                ),
            ]
        else:
            held, moved = held_out_regions(test), shifted_regions(test)
            panels = [
                (
                    "held-out canvases, tight boxes",
                    confusion_matrix(held.labels, region_predictions(session, held), classes),
                ),
                (
                    "shifted canvases, loose boxes",
                    confusion_matrix(moved.labels, region_predictions(session, moved), classes),
                ),
            ]
        path = output / f"confusion-{location.name}.png"
        _draw(path, f"{location.name} v{location.version}", panels, manifest.labels)
        written.append(path)
    return written


def main(
    repository: Annotated[Path, typer.Option(help="Model repository root.")] = Path("model_repository"),
    output: Annotated[Path, typer.Option(help="Where the PNG files are written.")] = DEFAULT_OUTPUT,
) -> None:
    for path in write_confusion_pictures(repository, output):
        typer.echo(str(path))


if __name__ == "__main__":
    typer.run(main)
