"""Task IO from every shipped manifest: the roles the manifest names, in protocol order, and no other task."""

from __future__ import annotations

import pytest

from poolserve.repository.manifest import Manifest, Task
from poolserve.service.runtime.model_io import ClassifierIO, RegionIO, model_io
from tests.service.conftest import REPOSITORY

MANIFESTS = {
    path.parent.parent.name: Manifest.model_validate_json(path.read_bytes())
    for path in sorted(REPOSITORY.glob("*/*/manifest.json"))
}


@pytest.mark.parametrize("name", MANIFESTS)
def test_the_io_holds_the_manifest_roles_in_protocol_order(name: str) -> None:
    manifest = MANIFESTS[name]
    io = model_io(manifest)
    roles = manifest.io
    assert io.image == roles.image and io.scores == roles.scores
    assert io.scores_are_probabilities is roles.scores_are_probabilities
    assert io.labels == tuple(manifest.labels)
    if manifest.task is Task.CLASSIFICATION:
        assert isinstance(io, ClassifierIO)
        assert io.inputs == (roles.image,) and io.outputs == (roles.scores,)
    else:
        assert isinstance(io, RegionIO)
        assert io.inputs == (roles.image, roles.boxes, roles.box_batch_indices)
        assert io.outputs == tuple(s for s in (roles.features, roles.scores) if s is not None)
        assert io.feature_dim == manifest.feature_dim
        assert (io.frame.width, io.frame.height) == (
            manifest.preprocessing.width,
            manifest.preprocessing.height,
        )


@pytest.mark.parametrize("name", MANIFESTS)
def test_the_other_task_io_refuses_the_manifest(name: str) -> None:
    manifest = MANIFESTS[name]
    other = RegionIO if manifest.task is Task.CLASSIFICATION else ClassifierIO
    with pytest.raises(ValueError, match=f"is a {manifest.task.value} model, not {other.task.value}"):
        other.of(manifest)


def test_the_shipped_repository_holds_both_tasks() -> None:
    assert {m.task for m in MANIFESTS.values()} == set(Task)
