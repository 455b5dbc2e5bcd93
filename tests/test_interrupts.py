"""A stop signal breaks out of an abortable region (a blocked upload), and nowhere else."""

from __future__ import annotations

import threading

import pytest

from agent import interrupts
from agent.errors import StopRequested


def test_outside_an_abortable_region_a_stop_is_only_a_flag() -> None:
    interrupts.interrupt_if_abortable()  # nothing raised: the loop checks its stop flag between steps


def test_inside_an_abortable_region_a_stop_raises() -> None:
    with pytest.raises(StopRequested, match="the upload in progress was abandoned"), interrupts.abortable():
        interrupts.interrupt_if_abortable()
    interrupts.interrupt_if_abortable()  # and the region is over


def test_a_deferred_stretch_finishes_first_then_the_stop_is_raised() -> None:
    done = []
    with pytest.raises(StopRequested), interrupts.abortable():
        with interrupts.deferred():
            interrupts.interrupt_if_abortable()  # as if the signal came during the journal write
            done.append("journaled")
        done.append("never reached")
    assert done == ["journaled"]


def test_other_threads_are_never_interrupted() -> None:
    outcome: list[str] = []

    def worker() -> None:
        with interrupts.abortable():
            interrupts.interrupt_if_abortable()
            outcome.append("not interrupted")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert outcome == ["not interrupted"]


def test_through_libraries_a_stop_passes_a_catch_all_and_leaves_as_stop_requested() -> None:
    caught: list[Exception] = []
    with pytest.raises(StopRequested), interrupts.cut_to_stop(), interrupts.abortable(through_libraries=True):
        try:
            interrupts.interrupt_if_abortable()  # as if the signal came during the send
        except Exception as exc:  # what botocore does with any error of a send (then it retries)
            caught.append(exc)
    assert caught == []
    with pytest.raises(StopRequested), interrupts.abortable():  # elsewhere it stays a plain StopRequested
        interrupts.interrupt_if_abortable()
