"""A dataset built on the fly from the committed held-out data, with one of each kind of bad input, and a
real server to compare against."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from poolserve.service.settings import Settings
from tests.service.conftest import DATA, REPOSITORY, running_server

REGION_MODEL = "digits-roialign"
CLASSIFIER = "lenet5-mnist"
# What the dataset's bad inputs must be reported as, by every engine.
BAD_REGION_INPUTS = {"gone.png": "missing", "broken.png": "invalid-image", "outside.png": "invalid-field"}
BAD_CLASSIFIER_INPUTS = {"gone.png": "missing", "broken.png": "invalid-image"}


@dataclass(frozen=True)
class Dataset:
    images: Path  # folder of canvases, digits and one corrupt file
    coco: Path
    jsonl: Path
    digit_list: Path  # a .txt list: held-out digits, the corrupt file and a path that does not exist


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("dataset")
    images = root / "images"
    (images / "digits").mkdir(parents=True)
    index = json.loads((DATA / "canvases" / "canvases.json").read_text())
    for canvas in index["canvases"]:
        shutil.copy(DATA / "canvases" / canvas["file"], images / canvas["file"])
    shutil.copy(DATA / "canvases" / "canvas_0.png", images / "outside.png")
    digits = sorted((DATA / "digits").glob("*.png"))[::10]  # one of each class
    for digit in digits:
        shutil.copy(digit, images / "digits" / digit.name)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)

    entries = [(c["file"], c["boxes"]) for c in index["canvases"]]
    entries += [("outside.png", [[10, 10, 30, 30], [500, 500, 600, 600]])]  # second box: past 112x112
    entries += [("broken.png", [[0, 0, 10, 10]]), ("gone.png", [[0, 0, 10, 10]])]
    coco = {
        "images": [{"id": n, "file_name": name} for n, (name, _) in enumerate(entries)],
        "annotations": [
            {"id": 100 * n + j, "image_id": n, "bbox": [x1, y1, x2 - x1, y2 - y1], "category_id": 7 + j}
            for n, (_, boxes) in enumerate(entries)
            for j, (x1, y1, x2, y2) in enumerate(boxes)
        ],
        "categories": [{"id": 7 + j, "name": f"c{j}"} for j in range(5)],
    }
    (root / "boxes.json").write_text(json.dumps(coco))
    with (root / "boxes.jsonl").open("w") as jsonl:
        for name, boxes in reversed(entries):  # any order in, sorted order out
            jsonl.write(json.dumps({"image": name, "boxes": boxes}) + "\n")
    listed = [str(images / "digits" / d.name) for d in digits]
    listed += [str(images / "broken.png"), str(images / "gone.png")]
    (root / "digits.txt").write_text("\n".join(listed) + "\n")
    return Dataset(images, root / "boxes.json", root / "boxes.jsonl", root / "digits.txt")


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    with running_server(Settings(repository=REPOSITORY)) as url:
        yield url
