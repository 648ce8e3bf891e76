"""Starting comparison servers pinned to a core set, waiting for them, and stopping them for good.

Some peers leave processes that are not in the group they were started in (Ray's actors and BentoML's
workers call ``setsid``), so stopping walks the whole process tree first and signals every group and
process in it, by id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def rss_bytes(pids: list[int]) -> int:
    """Resident memory summed over ``pids`` (shared pages count once per process, as ``ps`` shows)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by ``pids``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def core_busy_seconds(core: int) -> float:
    """CPU time spent on ``core`` by anything (user, nice, system, irq), from ``/proc/stat``."""
    ticks = os.sysconf("SC_CLK_TCK")
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / ticks
    raise ValueError(f"no cpu{core} in /proc/stat")


AUTOGROUP_NICE = -10


def prioritize(pid: int, nice: int = AUTOGROUP_NICE) -> None:
    """Raise a session's CPU priority over the rest of this shared machine.

    With ``kernel.sched_autogroup_enabled`` (on here) the scheduler shares CPU between sessions first,
    so a process's own ``nice`` only ranks it inside its session; the session's autogroup nice is what
    counts against other users' work. ``pid`` must lead a new session (``start_new_session=True``).
    """
    path = Path(f"/proc/{pid}/autogroup")
    with contextlib.suppress(OSError):
        path.write_text(str(nice))


@dataclass
class Server:
    """A server process tree started by the benchmark."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def tree(self) -> list[int]:
        return descendants(self.process.pid)

    def stop(self, grace_s: float = 10.0) -> None:
        pids = self.tree()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(pid, sig)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
                self.process.poll()
                time.sleep(0.2)
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            if not pids:
                break
        self.process.wait(timeout=5)


def start(name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path) -> Server:
    """Start ``argv`` in a new session; the caller pins it (taskset in ``argv``; children inherit it)."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    prioritize(process.pid)
    return Server(name, process, log_path)


def wait_ready(server: Server, url: str, probe: tuple[str, dict[str, object]], timeout_s: float) -> None:
    """Poll until one real request (``probe``: method and httpx kwargs) answers 200."""
    method, kwargs = probe
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({server.process.returncode}); see {server.log_path}")
        try:
            response = httpx.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} not ready after {timeout_s}s: {last}; see {server.log_path}")
