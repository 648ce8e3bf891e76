"""The cores the server may use and each worker's onnxruntime threads, from real affinity and quota files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poolserve.service.cores import available_cores, intra_op_threads_per_worker
from poolserve.service.settings import Settings

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),  # no quota
        ("50000 100000\n", 1),  # half a core still runs one thread
        ("150000 100000\n", min(AFFINITY, 2)),  # 1.5 cores round up
        ("6400000 100000\n", AFFINITY),  # a quota past the affinity: the affinity
    ],
)
def test_a_cgroup_quota_caps_the_affinity(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert available_cores(path) == expected


def test_without_a_cgroup_file_the_affinity_counts(tmp_path: Path) -> None:
    assert available_cores(tmp_path / "absent") == AFFINITY


@pytest.mark.parametrize(("workers", "cores", "threads"), [(1, 16, 16), (2, 16, 8), (3, 16, 5), (4, 2, 1)])
def test_workers_split_the_cores(workers: int, cores: int, threads: int) -> None:
    assert intra_op_threads_per_worker(Settings(), workers, cores) == threads
    assert workers * threads <= max(cores, workers)


@pytest.mark.parametrize("named", [0, 3])
def test_a_named_count_is_kept(named: int) -> None:
    assert intra_op_threads_per_worker(Settings(intra_op_threads=named), 4, 16) is None
