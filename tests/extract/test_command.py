"""The command's inputs: listings, box files and the refusals that stop a job before it starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poolserve.extract.dataset import build_items, list_images, read_boxes
from tests.extract.conftest import REGION_MODEL, Dataset
from tests.extract.helpers import extract


def test_a_folder_a_glob_and_a_list_name_the_same_images(dataset: Dataset, tmp_path: Path) -> None:
    folder = list_images(str(dataset.images / "digits"))
    pattern = list_images(str(dataset.images / "digits" / "*.png"))
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(reversed(pattern.keys)) + "\n\n")  # order and blank lines do not matter
    assert folder.keys == [Path(k).name for k in pattern.keys] == sorted(folder.keys)
    assert list_images(str(listed)).keys == pattern.keys
    recursive = list_images(str(dataset.images))
    assert "digits/" + folder.keys[0] in recursive.keys and "canvas_0.png" in recursive.keys


def test_coco_and_jsonl_give_the_same_items(dataset: Dataset) -> None:
    listing = list_images(str(dataset.images))
    coco = build_items(listing, read_boxes(dataset.coco))
    jsonl = build_items(listing, read_boxes(dataset.jsonl))
    assert [(i.key, i.boxes) for i in coco] == [(i.key, i.boxes) for i in jsonl]
    assert [i.key for i in coco] == sorted(i.key for i in coco)
    outside = next(i for i in coco if i.key == "outside.png")
    assert (outside.boxes, outside.category_ids) == ([[10, 10, 30, 30], [500, 500, 600, 600]], [7, 8])
    assert all(i.category_ids is None for i in jsonl)
    assert "digits/0_0.png" not in {i.key for i in coco}  # listed, but no boxes: nothing to pool


@pytest.mark.parametrize("model", [REGION_MODEL, "no-such-model"])  # no --boxes for a region model
def test_jobs_that_cannot_run_exit_2(dataset: Dataset, tmp_path: Path, model: str) -> None:
    extract(model, "--images", dataset.images, "--output", tmp_path / "out", expect_exit=2)
    assert not (tmp_path / "out").exists()


def test_an_unreadable_box_file_stops_a_region_job(dataset: Dataset, tmp_path: Path) -> None:
    bad = tmp_path / "boxes.json"
    bad.write_text(json.dumps({"not": "coco"}))
    out = tmp_path / "o"
    extract(REGION_MODEL, "--images", dataset.images, "--boxes", bad, "--output", out, expect_exit=2)
    assert not out.exists()
