"""What `gatewise serve` does to the cyclic garbage collector before it serves: the objects
alive at start-up are frozen out of later collections, and the youngest generation is collected
only after far more net allocations than CPython's default, so the requests in flight no longer
set off a collection every few requests (issue 15: 12% of the bare proxy path's CPU)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gatewise.server.serving import SERVING_GC_THRESHOLD, tune_gc_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The test process's collector as it was: thresholds back, nothing left frozen."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_serving_raises_only_the_youngest_generations_threshold(restored_gc: None) -> None:
    _, older, oldest = gc.get_threshold()
    tune_gc_for_serving()
    assert gc.get_threshold() == (SERVING_GC_THRESHOLD, older, oldest)
    assert SERVING_GC_THRESHOLD >= 10_000  # above what 64 requests in flight keep alive


def test_what_is_alive_at_start_up_is_frozen_out_of_later_collections(
        restored_gc: None) -> None:
    gateway = {"stands in for": ["the config", "the router", "the stores"]}
    tune_gc_for_serving()
    assert gc.get_freeze_count() > 0
    assert not any(o is gateway for o in gc.get_objects())  # no generation holds it now
    assert gc.isenabled()  # cycles are still collected: later, not never
