"""How many cores the server may use, and how onnxruntime's threads are split among its worker processes.

onnxruntime sizes its intra-op thread pool from the machine, not from the process: N workers each
starting a pool as wide as the machine put N threads on every core, and they spin against each other.
Each worker therefore gets ``cores // workers`` intra-op threads (at least one), unless the settings
name a count.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from poolserve.service.settings import Settings

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>", or "max <period>"


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on (its CPU affinity: taskset, a cpuset), capped by a cgroup CPU
    quota (a container's ``--cpus``, a Kubernetes CPU limit) rounded up."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


def intra_op_threads_per_worker(settings: Settings, workers: int, cores: int) -> int | None:
    """The intra-op thread count each worker should get, or None where the settings name one."""
    if "intra_op_threads" in settings.model_fields_set:
        return None
    return max(1, cores // workers)
