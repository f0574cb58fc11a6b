"""gc_paused: collection is off while any block is open, in any thread, and back as it was after the last."""

from __future__ import annotations

import gc
import threading

from mkt_ray.contract import gc_paused


def test_overlapping_pauses_in_two_threads_restore_collection_after_the_last() -> None:
    opened, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with gc_paused():
            opened.set()
            release.wait(10)
            seen.append(gc.isenabled())

    assert gc.isenabled()
    with gc_paused():
        thread = threading.Thread(target=other)
        thread.start()
        opened.wait(10)
        seen.append(gc.isenabled())
    seen.append(gc.isenabled())  # this thread's block closed first: the other one is still open
    release.set()
    thread.join(10)
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_nested_pauses_and_a_disabled_collector_stay_as_they_were() -> None:
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before the pause: the pause does not turn it on
    finally:
        gc.enable()
