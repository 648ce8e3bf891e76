"""Settings every test process shares, and the environment of the servers tests start as processes."""

from __future__ import annotations

import os

# Apps started in-process share pytest's interpreter, which runs on after each of them: freezing its heap
# (POOLSERVE_GC_FREEZE, on by default) would pin every finished test's objects for the rest of the session.
# Servers started as processes get server_environment() and keep the default; the freeze itself is tested
# in tests/service/test_gc_tuning.py.
os.environ.setdefault("POOLSERVE_GC_FREEZE", "false")


def server_environment() -> dict[str, str]:
    """This process's environment without its ``POOLSERVE_*`` variables: a server started from a test runs
    on the shipped defaults plus what the test sets, nothing of pytest's own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("POOLSERVE_")}
