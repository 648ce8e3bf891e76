"""A manifest that disagrees with its graph fails the model at load time, against a real uvicorn.

Each case is a shipped model's own file under a manifest changed in one field. Without the check these
loaded as ready and then answered every request with a 500 (or with features and labels that do not fit
the model's output).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, DigitFile, running_server

Change = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Change:
    def change(manifest: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _labels(count: int) -> Change:
    return _set("labels", [str(i) for i in range(count)])


def _size(side: int) -> Change:
    def change(manifest: dict[str, Any]) -> None:
        manifest["preprocessing"]["height"] = manifest["preprocessing"]["width"] = side
        manifest["io"]["image"]["shape"][2:] = [side, side]

    return change


# name -> (shipped model, change, what the reason must say)
CASES: dict[str, tuple[str, Change, str]] = {
    "x-input-name": ("lenet5-mnist", _set("io.image.name", "pixels"), "input 'pixels' is not in the graph"),
    "x-output-name": ("lenet5-mnist", _set("io.scores.name", "probs"), "output 'probs' is not in the graph"),
    "x-input-type": ("lenet5-mnist", _set("io.image.dtype", "uint8"), "input 'images' is tensor(float)"),
    "x-too-few-labels": ("lenet5-mnist", _labels(5), "10 scores per image; the manifest has 5 labels"),
    "x-too-many-labels": ("lenet5-mnist", _labels(20), "10 scores per image; the manifest has 20 labels"),
    "x-input-size": ("lenet5-mnist", _size(32), "a zero image of the manifest's shape [1, 1, 32, 32] fails"),
    "x-feature-dim": (
        "digits-roialign",
        _set("feature_dim", 7),
        "128 features per box; the manifest's feature_dim is 7",
    ),
    "x-box-name": ("digits-roialign", _set("io.boxes.name", "rois"), "input 'rois' is not in the graph"),
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("repository")
    for name, (source, change, _) in {
        **CASES,
        "lenet5-mnist": ("lenet5-mnist", _set("name", "lenet5-mnist"), ""),
    }.items():
        entry = root / name / "1"
        entry.mkdir(parents=True)
        shutil.copy(REPOSITORY / source / "1" / "model.onnx", entry / "model.onnx")
        manifest = json.loads((REPOSITORY / source / "1" / "manifest.json").read_text())
        manifest["name"] = name
        change(manifest)
        (entry / "manifest.json").write_text(json.dumps(manifest))
    with running_server(Settings(repository=root)) as base:
        yield base


@pytest.mark.parametrize("name", CASES)
def test_a_manifest_that_disagrees_with_its_graph_fails_the_model_with_the_reason(
    url: str, name: str, digit_files: list[DigitFile]
) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        model = client.get(f"/v1/models/{name}").json()
        assert model["status"] == "failed", model
        assert model["reason"].startswith("the manifest does not match the graph: "), model["reason"]
        assert CASES[name][2] in model["reason"], model["reason"]
        task = "classify" if CASES[name][0] == "lenet5-mnist" else "features"
        refused = client.post(
            f"/v1/models/{name}/{task}",
            files={"images": ("d.png", digit_files[0].path.read_bytes(), "image/png")},
            data={"boxes": "[[]]"} if task == "features" else None,
        )
        assert refused.status_code == 503, refused.text
        served = client.post(
            "/v1/models/lenet5-mnist/classify",
            content=digit_files[0].path.read_bytes(),
            headers={"content-type": "image/png"},
        )
        assert served.status_code == 200, served.text
        assert served.json()["results"][0]["predictions"][0]["label"] == digit_files[0].label
