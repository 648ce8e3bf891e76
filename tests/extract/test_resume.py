"""A job killed part-way (SIGKILL: no chance to clean up) and resumed writes what an uninterrupted run
writes, without redoing the shards it had finished."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.extract.conftest import CLASSIFIER
from tests.extract.helpers import assert_same_rows, extract, rows, shards
from tests.service.conftest import DATA, REPOSITORY

COPIES = 2  # 200 one-image shards: far more than the job finishes in the moment the test needs to kill it


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    for copy in range(COPIES):
        shutil.copytree(DATA / "digits", root / f"copy{copy}")
    return root


def _args(digits: Path, out: Path) -> list[str]:
    return [
        CLASSIFIER,
        "--images",
        str(digits),
        "--output",
        str(out),
        "--shard-size",
        "1",
        "--batch-size",
        "1",
    ]


def _command(digits: Path, out: Path) -> list[str]:
    extract_args = [*_args(digits, out), "--repository", str(REPOSITORY)]
    return [sys.executable, "-m", "poolserve", "extract", *extract_args]


def _kill_after_shards(digits: Path, out: Path, count: int) -> None:
    job = subprocess.Popen(_command(digits, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(shards(out)) < count:
            assert job.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "the job wrote no shards"
            time.sleep(0.002)
        os.kill(job.pid, signal.SIGKILL)
    finally:
        job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL


def test_resume_after_kill_equals_an_uninterrupted_run(digits: Path, tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    extract(*_args(digits, whole), expect_exit=0)
    total = len(shards(whole))
    assert total == 100 * COPIES

    _kill_after_shards(digits, resumed, count=5)
    finished = {p: p.stat().st_mtime_ns for p in shards(resumed)}
    assert 5 <= len(finished) < total, "killed part-way"
    assert not (resumed / "errors.jsonl").exists()

    extract(*_args(digits, resumed), "--resume", expect_exit=0)
    assert [p.name for p in shards(resumed)] == [p.name for p in shards(whole)]
    assert_same_rows(rows(resumed), rows(whole), atol=0)
    assert (resumed / "errors.jsonl").read_text() == (whole / "errors.jsonl").read_text() == ""
    assert {p: p.stat().st_mtime_ns for p in finished} == finished, "finished shards were redone"
    assert not list(resumed.glob(".tmp-*"))
    again = extract(*_args(digits, resumed), "--resume", expect_exit=0)  # nothing left to do
    assert again.stderr.strip().endswith("images, every one done before this run"), again.stderr


def test_an_existing_job_is_never_overwritten_or_mixed(digits: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    extract(*_args(digits / "copy0", out), expect_exit=0)
    before = rows(out)
    extract(*_args(digits / "copy0", out), expect_exit=2)  # no --resume
    other_rows = extract(*_args(digits / "copy0", out), "--resume", "--top-k", "3", expect_exit=2)
    assert "(top_k 5 there, 3 now); not resuming" in other_rows.stderr  # says what differs
    other_inputs = extract(*_args(digits, out), "--resume", expect_exit=2)
    assert "(other images or boxes: 100 there, 200 now)" in other_inputs.stderr
    assert_same_rows(rows(out), before, atol=0)


def test_ctrl_c_says_what_is_kept_and_resume_finishes(digits: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = _command(digits, out)
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(shards(out)) < 5:
        assert job.poll() is None, "the job ended before it could be interrupted"
        assert time.monotonic() < deadline, "the job wrote no shards"
        time.sleep(0.002)
    job.send_signal(signal.SIGINT)
    _, said = job.communicate(timeout=60)
    assert job.returncode == 130, said
    assert said.strip().splitlines()[-1] == (
        f"poolserve extract: interrupted; the shards already written in {out} are kept: "
        "the same command with --resume continues"
    )
    assert "Traceback" not in said
    extract(*_args(digits, out), "--resume", expect_exit=0)
    assert rows(out).num_rows == 100 * COPIES
