"""bench.stage_tracer on a clock the test moves: each stage is charged its own time, not its callees'."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

import bench.stage_tracer as stage_tracer
from bench.stage_tracer import Stage, StageTracer


class Clock:
    """Stands in for the ``time`` module: both clocks read ``now``, which only ``advance`` moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(stage_tracer, "time", fake)
    return fake


@pytest.fixture
def work(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A module whose functions call each other by global name, as the service's do."""
    module = types.ModuleType("traced_work")

    def inner() -> None:
        clock.advance(2)

    async def outer() -> None:
        clock.advance(1)
        module.inner()
        await asyncio.sleep(0)
        module.inner()
        clock.advance(3)

    vars(module).update(inner=inner, outer=outer)
    monkeypatch.setitem(sys.modules, "traced_work", module)
    return module


def test_each_stage_is_charged_its_own_time(work: types.ModuleType) -> None:
    tracer = StageTracer()
    stages = [Stage("outer", "traced_work:outer"), Stage("inner", "traced_work:inner")]
    with tracer.install(stages):
        asyncio.run(work.outer())
    assert tracer.wall == {"outer": 4.0, "inner": 4.0}
    assert tracer.cpu == tracer.wall
    assert tracer.calls == {"outer": 1, "inner": 2}


def test_wrappers_come_off_and_missing_stages_are_listed(work: types.ModuleType) -> None:
    original = work.inner
    tracer = StageTracer()
    with tracer.install([Stage("inner", "traced_work:inner"), Stage("gone", "traced_work:renamed")]):
        assert work.inner is not original
    assert work.inner is original
    assert tracer.missing == ["traced_work:renamed"]


def test_a_method_inherited_from_a_base_class_is_restored_to_inheriting(clock: Clock) -> None:
    class Base:
        def run(self) -> int:
            clock.advance(1)
            return 7

    class Child(Base):
        pass

    module = types.ModuleType("traced_classes")
    vars(module).update(Child=Child)
    sys.modules["traced_classes"] = module
    try:
        tracer = StageTracer()
        with tracer.install([Stage("run", "traced_classes:Child.run")]):
            assert Child().run() == 7
        assert "run" not in vars(Child)
        assert tracer.calls == {"run": 1}
    finally:
        del sys.modules["traced_classes"]
