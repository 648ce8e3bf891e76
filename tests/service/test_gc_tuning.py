"""The garbage collector while serving: the heap frozen once the models are in, every pause on /metrics."""

from __future__ import annotations

import gc
import re
import weakref
from collections.abc import Iterator

import httpx
import pytest

from poolserve.service.gc_tuning import GcPauseRecorder, freeze_loaded_heap
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, DigitFile, running_server
from tests.service.supervised import supervised_server


def _sample(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} is not on /metrics"
    return float(match.group(1))


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """This test may freeze pytest's own heap: give it back afterwards."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_the_recorder_reports_each_collection_with_its_generation_while_entered() -> None:
    pauses: list[tuple[int, float]] = []
    with GcPauseRecorder(lambda generation, seconds: pauses.append((generation, seconds))):
        gc.collect(0)
        gc.collect(2)
    # Other threads of this process may collect meanwhile; these two must be among what was reported.
    generations = [g for g, _ in pauses]
    assert 0 in generations and 2 in generations[generations.index(0) :]
    assert all(seconds >= 0 for _, seconds in pauses)
    seen = len(pauses)
    gc.collect()
    assert len(pauses) == seen, "the callback outlived the recorder"


@pytest.mark.usefixtures("unfrozen")
def test_freezing_takes_live_objects_out_of_reach_and_garbage_made_later_is_still_collected() -> None:
    alive = Node()
    assert freeze_loaded_heap() > 1000
    assert not any(o is alive for o in gc.get_objects()), "a live object is still walked by the collector"
    cycle = Node()
    cycle.other = Node()
    cycle.other.other = cycle
    watch = weakref.ref(cycle)
    del cycle
    # Other threads of this process (the session's server) may run the collection first: either way the
    # cycle must be gone after one.
    gc.collect()
    assert watch() is None, "a reference cycle made after the freeze was not collected"


def test_a_served_app_puts_every_collection_on_metrics(server_url: str) -> None:
    # The session's in-process server runs with POOLSERVE_GC_FREEZE=false (tests/conftest.py), in this
    # interpreter: a collection forced here is one of its process's pauses.
    series = 'poolserve_gc_pause_seconds_count{generation="2"}'
    before = _sample(httpx.get(f"{server_url}/metrics").text, series)
    gc.collect()
    text = httpx.get(f"{server_url}/metrics").text
    assert _sample(text, series) >= before + 1
    assert _sample(text, "poolserve_gc_frozen_objects") == 0.0


@pytest.mark.usefixtures("unfrozen")
def test_an_app_with_gc_freeze_freezes_the_heap_before_it_reports_ready() -> None:
    with running_server(Settings(repository=REPOSITORY, gc_freeze=True)) as url:
        frozen = _sample(httpx.get(f"{url}/metrics").text, "poolserve_gc_frozen_objects")
        assert frozen > 10_000 and gc.get_freeze_count() > 0


def test_poolserve_serve_freezes_by_default_and_answers_as_an_unfrozen_server(
    digit_files: list[DigitFile], server_url: str
) -> None:
    """The real command, in its own process, with no POOLSERVE_GC_FREEZE set, against the session's
    unfrozen in-process server on the same repository."""

    def answers(url: str) -> list[bytes]:
        return [
            httpx.post(
                f"{url}/v1/models/lenet5-mnist/classify",
                content=digit.path.read_bytes(),
                headers={"content-type": "image/png"},
            ).content
            for digit in digit_files[:40]
        ]

    with supervised_server(REPOSITORY) as (_, url):
        frozen_answers = answers(url)
        text = httpx.get(f"{url}/metrics").text
    assert frozen_answers == answers(server_url)
    assert b'"predictions"' in frozen_answers[0]
    # Start-up alone (FastAPI, pydantic, numpy, onnxruntime) leaves tens of thousands of objects alive.
    assert _sample(text, "poolserve_gc_frozen_objects") > 10_000
    # the full collection before the freeze, at least, was timed
    assert _sample(text, 'poolserve_gc_pause_seconds_count{generation="2"}') >= 1
