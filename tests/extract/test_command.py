"""The command's inputs: listings, box files and the refusals that stop a job before it starts."""

from __future__ import annotations

import errno
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from poolserve.cli import app
from poolserve.extract.dataset import build_items, list_images, read_boxes
from poolserve.service.settings import Settings
from tests.extract.conftest import CLASSIFIER, REGION_MODEL, Dataset
from tests.extract.helpers import extract, rows
from tests.service.conftest import REPOSITORY, running_server


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


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--server", "http://127.0.0.1:9"], "--server is for --engine http (this job's engine is local)"),
        (["--ray-address", "auto"], "--ray-address is for --engine ray (this job's engine is local)"),
    ],
)
def test_an_option_of_another_engine_is_refused_not_ignored(
    dataset: Dataset, tmp_path: Path, args: list[str], said: str
) -> None:
    done = extract(
        CLASSIFIER, "--images", dataset.digit_list, "--output", tmp_path / "out", *args, expect_exit=2
    )
    assert said in done.stderr and not (tmp_path / "out").exists()


def test_a_colon_without_a_version_is_refused(dataset: Dataset, tmp_path: Path) -> None:
    done = extract(
        f"{CLASSIFIER}:", "--images", dataset.digit_list, "--output", tmp_path / "out", expect_exit=2
    )
    assert "the version after ':' must be a number" in done.output


def test_an_empty_dataset_boxes_for_a_classifier_and_a_file_as_output_stop_the_job_in_one_line(
    dataset: Dataset, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "list.txt").write_text("\n")
    for images in (empty, tmp_path / "list.txt"):
        said = extract(CLASSIFIER, "--images", images, "--output", tmp_path / "out", expect_exit=2)
        assert "no images found" in said.output and not (tmp_path / "out").exists()
    said = extract(
        CLASSIFIER,
        "--images",
        dataset.images,
        "--boxes",
        dataset.jsonl,
        "--output",
        tmp_path / "o",
        expect_exit=2,
    )
    assert "--boxes is for region-features models only" in said.output
    said = extract(
        REGION_MODEL,
        "--images",
        dataset.images,
        "--boxes",
        tmp_path / "none.json",
        "--output",
        tmp_path / "o",
        expect_exit=2,
    )
    assert said.output.strip().endswith("none.json: no such file"), said.output
    (tmp_path / "a-file").write_text("")
    said = extract(CLASSIFIER, "--images", dataset.images, "--output", tmp_path / "a-file", expect_exit=2)
    assert said.output.strip().endswith("is a file; extraction writes a folder of shards")


def test_an_unreadable_box_file_stops_a_region_job(dataset: Dataset, tmp_path: Path) -> None:
    bad = tmp_path / "boxes.json"
    bad.write_text(json.dumps({"not": "coco"}))
    out = tmp_path / "o"
    extract(REGION_MODEL, "--images", dataset.images, "--boxes", bad, "--output", out, expect_exit=2)
    assert not out.exists()


def test_a_server_that_does_not_answer_stops_the_job_in_one_line(dataset: Dataset, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        out = tmp_path / "out"
        done = extract(
            CLASSIFIER, "--images", dataset.digit_list, "--output", out,
            "--engine", "http", "--server", url, expect_exit=2,
        )  # fmt: skip
    assert done.stderr.splitlines() == [f"poolserve extract: {url}: connection refused"]
    assert not out.exists()


@pytest.fixture
def failing_server(server_url: str) -> Iterator[str]:
    """Describes the real classifier as the real server does, then fails every inference with a 500."""
    info = httpx.get(f"{server_url}/v1/models/{CLASSIFIER}").content
    problem = json.dumps({"type": "about:blank", "title": "Internal Server Error", "detail": "it broke"})

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, info, "application/json")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self._send(500, problem.encode(), "application/problem+json")

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        thread.join()


def test_a_server_failing_mid_job_stops_it_in_one_line(
    dataset: Dataset, failing_server: str, tmp_path: Path
) -> None:
    done = extract(
        CLASSIFIER, "--images", dataset.digit_list, "--output", tmp_path / "out",
        "--engine", "http", "--server", failing_server, expect_exit=2,
    )  # fmt: skip
    assert "Traceback" not in done.output
    assert done.stderr.splitlines()[-1] == (
        f"poolserve extract: {failing_server}: 500 Internal Server Error: it broke "
        "(the shards already written are kept: --resume continues)"
    )


def test_the_repository_can_come_from_poolserve_repository(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the Ray image (deploy/ray.Dockerfile) points every node at its models: the variable, from any
    working directory, with no --repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POOLSERVE_REPOSITORY", str(REPOSITORY))
    argv = ["extract", CLASSIFIER, "--images", str(dataset.images / "digits"), "--output", "out"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "out").num_rows == len(list((dataset.images / "digits").glob("*.png")))
    monkeypatch.setenv("POOLSERVE_REPOSITORY", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(app, [*argv[:-1], "out2"])
    assert result.exit_code == 2 and "nowhere" in result.output


def test_an_output_that_cannot_be_created_stops_the_job_in_one_line(dataset: Dataset, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "sub"
    said = extract(CLASSIFIER, "--images", dataset.images / "digits", "--output", out, expect_exit=2)
    assert said.stderr.splitlines() == [f"poolserve extract: cannot create --output {out}: not a directory"]


def test_a_full_disk_mid_job_stops_it_in_one_line_and_resume_finishes_it(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_table = pq.write_table
    written: list[object] = []

    def fills_up(table: object, where: Path) -> None:
        if written:  # the second shard: the disk is full
            Path(where).write_bytes(b"PAR1 half")
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left")
        written.append(where)
        write_table(table, where)

    monkeypatch.setattr(pq, "write_table", fills_up)
    out = tmp_path / "out"
    common: list[str | Path] = [CLASSIFIER, "--images", dataset.images / "digits", "--shard-size", "4"]
    said = extract(*common, "--output", out, expect_exit=2)
    assert said.stderr.splitlines()[-1] == (
        f"poolserve extract: cannot write --output {out}: no space left on device "
        "(the shards already written are kept: --resume continues)"
    )
    assert [p.name for p in out.glob("*.parquet")] == ["part-00000.parquet"]  # whole; no temp file left
    assert pq.read_table(out / "part-00000.parquet").num_rows == 4
    monkeypatch.setattr(pq, "write_table", write_table)  # space freed
    extract(*common, "--output", out, "--resume", expect_exit=0)
    assert rows(out).num_rows == 10


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (
            "http://[::1",
            "--server 'http://[::1' is not a URL: Invalid port: ':1'",
        ),
        ("localhost:8000", "--server 'localhost:8000' must be http://host:port or https://host:port"),
    ],
)
def test_a_malformed_server_url_stops_the_job_in_one_line(
    dataset: Dataset, tmp_path: Path, server: str, said: str
) -> None:
    done = extract(
        CLASSIFIER, "--images", dataset.digit_list, "--output", tmp_path / "out",
        "--engine", "http", "--server", server, expect_exit=2,
    )  # fmt: skip
    assert done.stderr.splitlines() == [f"poolserve extract: {said}"]


def test_a_server_wanting_a_key_says_how_to_pass_one(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POOLSERVE_API_KEY", raising=False)
    with running_server(Settings(repository=REPOSITORY, api_key="right")) as url:
        for key, given in ((None, "no API key was given"), ("wrong", "the --api-key given is wrong")):
            done = extract(
                CLASSIFIER, "--images", dataset.digit_list, "--output", tmp_path / "out",
                "--engine", "http", "--server", url, *(("--api-key", key) if key else ()), expect_exit=2,
            )  # fmt: skip
            assert done.stderr.splitlines() == [
                f"poolserve extract: {url}: 401: {given}; pass --api-key or set POOLSERVE_API_KEY"
            ]


def test_a_key_no_http_header_can_carry_is_refused_as_the_key(dataset: Dataset, tmp_path: Path) -> None:
    done = extract(
        CLASSIFIER, "--images", dataset.digit_list, "--output", tmp_path / "out",
        "--engine", "http", "--server", "http://127.0.0.1:9", "--api-key", "ключ", expect_exit=2,
    )  # fmt: skip
    assert done.stderr.splitlines() == [
        "poolserve extract: --api-key holds characters no HTTP header can carry (non-ASCII, control)"
    ]
