"""The processing model, seen through dataSetStatus: nothing queued yet, then steady progress."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from agent.simulator import LearnSimulator
from tests.simulator.client import counts, feed, post, queued_reading, uid_of
from tests.support.learn import PEOPLE_HEADER, person_rows
from tests.support.waiting import wait_for


@pytest.fixture
def slow_sim() -> Iterator[LearnSimulator]:
    sim = LearnSimulator(rows_per_second=20).start()
    yield sim
    sim.stop()


def test_a_new_data_set_shows_nothing_queued_until_the_start_delay_has_passed():
    with LearnSimulator(rows_per_second=1000, start_delay=30) as sim:
        uid = uid_of(post(sim, "person", feed(PEOPLE_HEADER, person_rows(5))))

        assert counts(sim, uid) == {"completedCount": 0, "queuedCount": 0, "errorCount": 0, "warningCount": 0}
        info = sim.dataset(uid)
        assert (info.begun, info.finished) == (False, False)
        assert not sim.wait_idle(0)


def test_without_a_start_delay_the_first_reading_is_already_queued():
    with LearnSimulator(rows_per_second=1, start_delay=0) as sim:
        uid = uid_of(post(sim, "person", feed(PEOPLE_HEADER, person_rows(50))))
        first = counts(sim, uid)
        assert first["queuedCount"] > 0
        assert first["queuedCount"] + first["completedCount"] == 50


def test_processing_is_asynchronous_at_the_configured_rate(slow_sim):
    uid = uid_of(post(slow_sim, "person", feed(PEOPLE_HEADER, person_rows(40))))

    first = queued_reading(slow_sim, uid)
    assert first["queuedCount"] > 0
    assert first["queuedCount"] + first["completedCount"] == 40

    assert slow_sim.wait_idle(30)
    done = slow_sim.dataset(uid)
    assert (done.queued, done.completed, done.finished) == (0, 40, True)


def progressed_beyond(sim: LearnSimulator, uid: str, completed: int) -> dict[str, int] | None:
    reading = counts(sim, uid)
    return reading if reading["completedCount"] > completed else None


def test_a_big_data_set_progresses_smoothly_so_a_client_can_estimate_the_finish():
    with LearnSimulator(rows_per_second=2000, start_delay=0) as sim:  # 50,000 rows: about 25 s
        uid = uid_of(post(sim, "person", feed(PEOPLE_HEADER, person_rows(50_000))))
        readings = [wait_for(partial(progressed_beyond, sim, uid, -1), "a first reading")]
        for _ in range(3):
            last = readings[-1]["completedCount"]
            readings.append(wait_for(partial(progressed_beyond, sim, uid, last), "more progress"))

        for reading in readings:
            assert reading["completedCount"] + reading["queuedCount"] == 50_000
        completed = [r["completedCount"] for r in readings]
        assert completed == sorted(set(completed))
        assert completed[-1] < 50_000  # still running: the counts grew in several steps
