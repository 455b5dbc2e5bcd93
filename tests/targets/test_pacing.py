"""Finish-aware poll pacing (`agent.targets.pacing`), driven by a model of Learn on model time."""

from __future__ import annotations

import itertools

import pytest

from agent.targets.pacing import MIN_SHARE, PollPacer, Reading


def follow(rows: int, rate: float, start_delay: float, *, initial: float = 5.0, maximum: float = 60.0):
    """Polls a modelled data set until done; returns (poll times, lag after the true finish)."""
    finish = start_delay + rows / rate

    def processed(at: float) -> int:
        return min(rows, int(max(0.0, at - start_delay) * rate))

    pacer, now, polls = PollPacer(0.0, initial, maximum), 0.0, []
    while True:
        polls.append(now)
        done = processed(now)
        pacer.observe(Reading(at=now, processed=done, remaining=rows - done))
        if done >= rows:
            return polls, now - finish
        now += pacer.next_pause(now)


def fixed_poller_polls(rows: int, rate: float, start_delay: float, every: float = 5.0) -> int:
    finish, polls, now = start_delay + rows / rate, 1, 0.0
    while now < finish:
        now += every
        polls += 1
    return polls


@pytest.mark.parametrize("rows", [50_000, 500_000])
def test_a_long_set_is_noticed_just_after_it_finishes_with_a_fifth_of_a_fixed_pollers_polls(rows):
    polls, lag = follow(rows, rate=100.0, start_delay=2.0)

    assert 0 <= lag <= 0.5
    assert len(polls) <= fixed_poller_polls(rows, 100.0, 2.0) / 5


def test_shorter_sets_are_noticed_within_half_a_second_for_a_few_polls_more_at_most():
    polls, lag = follow(5_000, rate=100.0, start_delay=2.0)
    assert 0 <= lag <= 0.5 and len(polls) < fixed_poller_polls(5_000, 100.0, 2.0)
    polls, lag = follow(500, rate=100.0, start_delay=2.0)  # done in 7 s: the fixed poller reads 3 times
    assert 0 <= lag <= 0.5 and len(polls) <= 5


def test_no_pause_is_shorter_than_the_share_of_time_elapsed_nor_longer_than_poll_max():
    polls, _ = follow(50_000, rate=100.0, start_delay=2.0, initial=0.5, maximum=30.0)
    for before, after in itertools.pairwise(polls[1:]):
        assert after - before >= min(MIN_SHARE * before, 30.0 / 4) - 1e-9
        assert after - before <= 30.0 + 1e-9


def test_nothing_moving_backs_off_from_poll_initial_doubling_up_to_poll_max():
    pacer = PollPacer(0.0, 5.0, 60.0)
    pauses, now = [], 0.0
    for _ in range(6):
        pacer.observe(Reading(at=now, processed=0, remaining=100))
        pauses.append(pacer.next_pause(now))
        now += pauses[-1]
    assert pauses == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert pacer.eta(now) is None


def test_a_stall_midway_falls_back_to_back_off_and_a_restart_is_estimated_again():
    pacer = PollPacer(0.0, 1.0, 60.0)
    for at, done in ((0.0, 0), (1.0, 100), (2.0, 200)):
        pacer.observe(Reading(at=at, processed=done, remaining=1000 - done))
    assert pacer.eta(2.0) == pytest.approx(8.0)
    pacer.observe(Reading(at=6.0, processed=200, remaining=800))
    assert pacer.eta(6.0) is None and pacer.next_pause(6.0) == 1.0
    pacer.observe(Reading(at=7.0, processed=300, remaining=700))
    assert pacer.eta(7.0) is not None


def test_a_count_going_back_forgets_the_rate():
    pacer = PollPacer(0.0, 1.0, 60.0)
    for at, done in ((1.0, 100), (2.0, 200), (3.0, 50)):
        pacer.observe(Reading(at=at, processed=done, remaining=1000 - done))
    assert pacer.rate() is None and pacer.eta(3.0) is None
