"""All three engines on one dataset: the same rows, equal to the HTTP endpoint's answers, and an errors
file that lists exactly the bad inputs."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from tests.extract.conftest import (
    BAD_CLASSIFIER_INPUTS,
    BAD_REGION_INPUTS,
    CLASSIFIER,
    REGION_MODEL,
    Dataset,
)
from tests.extract.helpers import assert_same_rows, errors, extract, rows
from tests.service.conftest import DATA


@pytest.fixture(scope="module")
def region_local(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("region") / "local"
    extract(
        REGION_MODEL,
        "--images",
        dataset.images,
        "--boxes",
        dataset.coco,
        "--output",
        out,
        "--shard-size",
        "3",
    )
    return out


def test_local_rows_cover_every_good_box(dataset: Dataset, region_local: Path) -> None:
    table = rows(region_local)
    assert table.schema.metadata[b"poolserve.model"] == REGION_MODEL.encode()
    # canvases 1 + 3 + 1 + 2 + 4 boxes; the other four images are bad
    assert table.num_rows == 11
    assert table.column("image").to_pylist() == sorted(table.column("image").to_pylist())
    assert set(table.column("category_id").to_pylist()) <= {7, 8, 9, 10}
    assert len(table.column("features")[0]) == table.schema.field("features").type.list_size


def test_errors_list_exactly_the_bad_inputs(region_local: Path) -> None:
    assert {e["image"]: e["reason"] for e in errors(region_local)} == BAD_REGION_INPUTS
    outside = next(e for e in errors(region_local) if e["image"] == "outside.png")
    assert "wholly outside" in outside["detail"]
    broken = next(e for e in errors(region_local) if e["image"] == "broken.png")
    assert broken["detail"] == "the data is not a readable image"  # the row names the image: no images[0]


def test_jsonl_boxes_give_the_coco_rows(dataset: Dataset, region_local: Path, tmp_path: Path) -> None:
    out = tmp_path / "jsonl"
    extract(
        REGION_MODEL,
        "--images",
        dataset.images,
        "--boxes",
        dataset.jsonl,
        "--output",
        out,
        "--shard-size",
        "3",
    )
    assert_same_rows(rows(out), rows(region_local).drop_columns(["category_id"]), atol=0)
    assert errors(out) == errors(region_local)


def test_rows_equal_the_features_endpoint(dataset: Dataset, region_local: Path, server_url: str) -> None:
    table = rows(region_local).to_pylist()
    with httpx.Client(base_url=server_url, timeout=30) as http:
        for image in sorted({r["image"] for r in table}):
            mine = [r for r in table if r["image"] == image]
            boxes = [[r["box"] for r in mine]]
            files = [("images", (image, (dataset.images / image).read_bytes(), "image/png"))]
            response = http.post(
                f"/v1/models/{REGION_MODEL}/features", files=files, data={"boxes": str(boxes)}
            )
            answer = response.json()["results"][0]["boxes"]
            for row, box in zip(mine, answer, strict=True):
                np.testing.assert_allclose(row["features"], box["features"], atol=1e-6)
                assert row["labels"] == [p["label"] for p in box["predictions"]]
                np.testing.assert_allclose(row["scores"], [p["score"] for p in box["predictions"]], atol=1e-6)


def test_http_engine_writes_the_local_rows(
    dataset: Dataset, region_local: Path, server_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "http"
    extract(
        REGION_MODEL, "--images", dataset.images, "--boxes", dataset.coco, "--output", out,
        "--shard-size", "3", "--engine", "http", "--server", server_url,
        "--workers", "3", "--batch-size", "2",
    )  # fmt: skip
    assert_same_rows(rows(out), rows(region_local))
    assert errors(out) == errors(region_local)


def test_ray_engine_writes_the_local_rows(dataset: Dataset, region_local: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    done = extract(
        REGION_MODEL, "--images", dataset.images, "--boxes", dataset.coco, "--output", out,
        "--shard-size", "3", "--engine", "ray", "--workers", "2",
    )  # fmt: skip
    assert_same_rows(rows(out), rows(region_local))
    assert errors(out) == errors(region_local)
    counts = [line.split(",")[0] for line in done.stderr.splitlines() if line.startswith("extract: ")]
    assert counts and len(counts) == len(set(counts)), counts  # no count, the final one included, twice


def _by_name(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {Path(str(r["image"])).name: r for r in table.to_pylist()}


def test_engines_agree_on_a_classifier(dataset: Dataset, server_url: str, tmp_path: Path) -> None:
    local, http = tmp_path / "local", tmp_path / "http"
    common: list[str | Path] = ["--images", dataset.digit_list, "--batch-size", "4"]
    said = extract(CLASSIFIER, *common, "--output", local).stderr
    said += extract(CLASSIFIER, *common, "--output", http, "--engine", "http", "--server", server_url).stderr
    assert "images/s" in said and "boxes/s" not in said  # a classifier has no boxes to count
    assert_same_rows(rows(http), rows(local))
    assert {Path(e["image"]).name: e["reason"] for e in errors(local)} == BAD_CLASSIFIER_INPUTS
    assert errors(http) == errors(local)
    by_name = _by_name(rows(local))
    assert len(by_name) == 10
    with httpx.Client(base_url=server_url, timeout=30) as client:
        for name, row in by_name.items():
            body = Path(str(row["image"])).read_bytes()
            answer = client.post(
                f"/v1/models/{CLASSIFIER}/classify", content=body, headers={"content-type": "image/png"}
            ).json()
            predictions = answer["results"][0]["predictions"]
            assert row["labels"] == [p["label"] for p in predictions], name
            np.testing.assert_allclose(row["scores"], [p["score"] for p in predictions], atol=1e-6)


def test_float16_features_are_the_float32_ones_rounded(
    dataset: Dataset, region_local: Path, server_url: str, tmp_path: Path
) -> None:
    local, http = tmp_path / "local", tmp_path / "http"
    common: list[str | Path] = ["--images", dataset.images, "--boxes", dataset.coco, "--encoding", "float16"]
    extract(REGION_MODEL, *common, "--output", local)
    extract(REGION_MODEL, *common, "--output", http, "--engine", "http", "--server", server_url)
    assert rows(local).schema.field("features").type.value_type == pa.float16()
    full = np.asarray(rows(region_local).column("features").to_pylist(), np.float32)
    for out in (local, http):
        half = np.asarray(rows(out).column("features").to_pylist(), np.float16)
        # the float32 rows agree within 1e-6, which can tip a float16 rounding by one unit
        np.testing.assert_allclose(half, full.astype(np.float16), rtol=2**-10, atol=2**-24)
    assert_same_rows(rows(http), rows(local), atol=2**-10)


def test_a_large_jpeg_gets_the_services_numbers_from_every_engine(server_url: str, tmp_path: Path) -> None:
    """Large JPEGs decode at reduced scale in the service (POOLSERVE_REDUCED_JPEG_DECODE); the local
    engine decodes them as the service does, so its rows are the service's numbers too."""
    folder = tmp_path / "jpegs"
    folder.mkdir()
    canvas = Image.open(DATA / "canvases" / "canvas_1.png").convert("L")
    canvas.resize((112 * 6, 112 * 6), Image.Resampling.BILINEAR).save(folder / "large.jpg", quality=90)
    boxes = [[18 * 6, 49 * 6, 28 * 6, 64 * 6], [74 * 6, 59 * 6, 97 * 6, 91 * 6]]
    (tmp_path / "boxes.jsonl").write_text(json.dumps({"image": "large.jpg", "boxes": boxes}) + "\n")
    local, http = tmp_path / "local", tmp_path / "http"
    common: list[str | Path] = ["--images", folder, "--boxes", tmp_path / "boxes.jsonl"]
    extract(REGION_MODEL, *common, "--output", local, expect_exit=0)
    extract(
        REGION_MODEL, *common, "--output", http, "--engine", "http", "--server", server_url, expect_exit=0
    )
    assert_same_rows(rows(http), rows(local))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with next to no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_headers_past_pillows_bomb_guard_are_one_images_error_in_every_engine(
    server_url: str, tmp_path: Path
) -> None:
    """Pillow raises past 2 x its MAX_IMAGE_PIXELS and warns past 1 x (an error under pytest): neither
    may stop the http engine's job or print, the image is refused as the local engine refuses it."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(_png_header(50_000, 50_000))
    (folder / "warns.png").write_bytes(_png_header(10_000, 10_000))
    (folder / "good.png").write_bytes((DATA / "digits" / "0_0.png").read_bytes())
    local, http = tmp_path / "local", tmp_path / "http"
    extract(CLASSIFIER, "--images", folder, "--output", local)
    said = extract(
        CLASSIFIER, "--images", folder, "--output", http, "--engine", "http", "--server", server_url
    )
    assert "Warning" not in said.output and "Traceback" not in said.output
    assert {e["image"]: e["reason"] for e in errors(http)} == {
        "bomb.png": "image-too-large",
        "warns.png": "image-too-large",
    }
    assert [e["reason"] for e in errors(local)] == [e["reason"] for e in errors(http)]
    assert rows(http).column("image").to_pylist() == ["good.png"]
