"""Exclusive wall time per named stage of a request, by wrapping the functions that implement each stage.

A stage is a function or method named ``"module:attribute.path"``; ``StageTracer.install`` replaces it with
a wrapper that times each call and charges the time to that stage minus the time of the traced stages it
called (its children), so the stages of one request add up to the request's wall time. The call stack is
one list for the whole process: the figures are exact only while one request is in flight at a time
(concurrency 1), which is how ``bench.hotpath`` runs it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stage:
    label: str
    target: str  # "package.module:Class.method" or "package.module:function"


def _resolve(target: str) -> tuple[Any, str]:
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attribute = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    inspect.getattr_static(owner, attribute)  # AttributeError when the code no longer has it
    return owner, attribute


class StageTracer:
    """Wall and CPU seconds per stage label, in the order the stages were first entered.

    CPU time is the process's (every thread): at concurrency 1 only one stage runs at a time, so it is
    the stage's own, and unlike wall time it leaves out the time other processes held the core.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.missing: list[str] = []  # stages whose function the code under test does not have
        self._children: list[list[float]] = []  # per open call: [wall, cpu] spent in traced callees so far

    def _enter(self, label: str) -> tuple[float, float]:
        if label not in self.calls:
            self.wall[label] = self.cpu[label] = 0.0
            self.calls[label] = 0
        self._children.append([0.0, 0.0])
        return time.perf_counter(), time.process_time()

    def _leave(self, label: str, started: tuple[float, float]) -> None:
        wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
        children = self._children.pop()
        self.wall[label] += wall - children[0]
        self.cpu[label] += cpu - children[1]
        self.calls[label] += 1
        if self._children:
            self._children[-1][0] += wall
            self._children[-1][1] += cpu

    def _wrap(self, label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = self._enter(label)
                try:
                    return await original(*args, **kwargs)
                finally:
                    self._leave(label, started)

            return timed_async

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self._enter(label)
            try:
                return original(*args, **kwargs)
            finally:
                self._leave(label, started)

        return timed

    @contextmanager
    def install(self, stages: list[Stage]) -> Iterator[StageTracer]:
        """Every stage wrapped while the block runs. Build the app inside it: some callables are bound when
        the app is built (Starlette's router keeps its ``app`` method as its middleware stack)."""
        restore: list[tuple[Any, str, Any]] = []
        try:
            for stage in stages:
                try:
                    owner, attribute = _resolve(stage.target)
                except (ImportError, AttributeError):
                    self.missing.append(stage.target)
                    continue
                static = inspect.getattr_static(owner, attribute)
                own = attribute in vars(owner)  # else inherited: restored by deleting the wrapper
                restore.append((owner, attribute, static if own else None))
                wrapped = self._wrap(stage.label, getattr(owner, attribute))
                if isinstance(static, staticmethod):
                    wrapped = staticmethod(wrapped)
                setattr(owner, attribute, wrapped)
            yield self
        finally:
            for owner, attribute, static in reversed(restore):
                if static is None:
                    delattr(owner, attribute)
                else:
                    setattr(owner, attribute, static)

    def reset(self) -> None:
        self.wall.clear()
        self.cpu.clear()
        self.calls.clear()
