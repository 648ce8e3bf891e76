"""Listing a dataset, reading its box file and its images: what is refused, and in which words."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from poolserve.extract.boxes import check_image_boxes
from poolserve.extract.dataset import DatasetError, read_boxes
from poolserve.service.errors import InvalidField
from tests.extract.conftest import CLASSIFIER, REGION_MODEL, Dataset
from tests.extract.helpers import errors, extract, rows
from tests.service.conftest import DATA


def test_a_list_that_is_not_utf8_stops_the_job_in_one_line(tmp_path: Path) -> None:
    listed = tmp_path / "latin1.txt"
    listed.write_bytes("images/caf\xe9.png\n".encode("latin-1"))
    said = extract(CLASSIFIER, "--images", listed, "--output", tmp_path / "out", expect_exit=2)
    assert said.stderr.splitlines() == [
        f"poolserve extract: --images {listed}: not UTF-8 text (byte 10); "
        "save the list as UTF-8, one path a line"
    ]


def test_devices_fifos_and_dangling_links_are_reported_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "good.png").write_bytes((DATA / "digits" / "0_0.png").read_bytes())
    os.mkfifo(folder / "pipe.png")  # opening it would block the job for good
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "null.png").symlink_to("/dev/null")  # a device reads as if it were empty (or endless)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{folder / 'good.png'}\n/dev/null\n")
    for images, out in ((folder, tmp_path / "o1"), (listed, tmp_path / "o2")):
        extract(CLASSIFIER, "--images", images, "--output", out)
        assert rows(out).num_rows == 1
    not_regular = "not a regular file (a device, FIFO or socket); name image files"
    assert [(e["image"], e["reason"], e["detail"]) for e in errors(tmp_path / "o1")] == [
        ("gone.png", "missing", "a symbolic link to a file that does not exist"),
        ("null.png", "unreadable", not_regular),
        ("pipe.png", "unreadable", not_regular),
    ]
    assert errors(tmp_path / "o2") == [{"image": "/dev/null", "reason": "unreadable", "detail": not_regular}]


def test_an_empty_box_file_is_blamed_on_the_box_file(dataset: Dataset, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    said = extract(
        REGION_MODEL, "--images", dataset.images, "--boxes", empty, "--output", tmp_path / "o", expect_exit=2
    )
    assert said.stderr.splitlines() == [
        f"poolserve extract: --boxes {empty}: names no image (COCO: images[] is empty; JSON Lines: no lines)"
    ]


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        (
            "coco.json",
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.png"}],
                    "annotations": [{"id": 7, "image_id": 99, "bbox": [1, 1, 5, 5]}],
                }
            ),
            "annotation 7: image_id 99 is not in images[]",
        ),
        ("array.json", "[1, 2, 3]", "the file is a JSON list; expected an object"),
        (
            "cut.jsonl",
            '{"image": "a.png", "boxes": [[1, 1, 5, 5]]}\n{"image": "b.png", "boxes": [[1, 1, 5\n',
            "line 2, column 38: Expecting ',' delimiter",
        ),
        (
            "list.jsonl",
            '{"image": "a.png", "boxes": []}\n\n[1]\n',
            "line 3 is a JSON list; expected an object",
        ),
        ("nokey.jsonl", '{"image": "a.png"}\n', "line 1: no 'boxes' field"),
    ],
)
def test_a_bad_box_file_is_described_where_it_is_wrong(
    tmp_path: Path, name: str, text: str, said: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError) as refused:
        read_boxes(path)
    assert str(refused.value) == f"--boxes {path}: {said}"


@pytest.mark.parametrize("box", [[float("inf"), 1, 5, 5], [0, 0, float("inf"), 50], [0, float("-inf"), 5, 5]])
def test_an_infinite_coordinate_is_called_infinite(box: list[float]) -> None:
    with pytest.raises(InvalidField, match=r"^boxes\[0\]\[1\] .* holds an infinite number; expected finite"):
        check_image_boxes([[1, 1, 5, 5], box], (112, 112), max_boxes=10)
