"""Settings every test process shares."""

from __future__ import annotations

import os

# Apps started in-process share pytest's interpreter, which runs on after each of them: freezing its heap
# (POOLSERVE_GC_FREEZE, on by default) would pin every finished test's objects for the rest of the session.
# Servers started as processes (tests/service/supervised.py) drop POOLSERVE_* and keep the default; the
# freeze itself is tested in tests/service/test_gc_tuning.py.
os.environ.setdefault("POOLSERVE_GC_FREEZE", "false")
