"""When to read a data set's status next: finish-aware polling.

Why not a fixed interval or plain back-off: an admin feels the lag between Learn finishing and the
agent noticing, and Learn feels every poll. Learn processes rows at a fairly steady rate, so the
rows completed per second between readings tell when the set will be done. The pacer polls half
way to that estimated finish, halving the distance as it approaches, then once just after it; so a
long set costs a handful of polls and is noticed within a fraction of a second of finishing.

Guards, in plain terms:
- no pause is ever shorter than `MIN_SHARE` of the time spent following the set (nor `MIN_GAP`),
  so a wrong estimate cannot turn into a burst of polls (on very long sets that floor stops growing
  at a quarter of `poll_max_seconds`, so the final approach still fits under the longest pause);
- while nothing moves (queued, not started, or stalled) the pause backs off from
  `poll_initial_seconds`, doubling up to `poll_max_seconds`;
- no pause is ever longer than `poll_max_seconds`, and the caller caps it at its deadline.

The pacer is pure: it is fed readings with their times (from an injected clock) and answers pauses.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MIN_SHARE = 0.05  # the shortest pause, as a share of the time spent following the set
MIN_GAP = 0.05  # seconds; the shortest pause at the very start
RATE_WINDOW = 5  # readings that showed progress, the oldest of which the rate is measured from
FINISH_MARGIN = 0.1  # seconds after the estimated finish to poll, plus FINISH_MARGIN_SHARE of the estimate
FINISH_MARGIN_SHARE = 0.005


@dataclass(frozen=True)
class Reading:
    """Rows processed so far (completed + warnings + errors) and rows left, at monotonic time `at`."""

    at: float
    processed: int
    remaining: int


class PollPacer:
    """Paces the polls of one data set from its readings; see the module docstring for the rule."""

    def __init__(self, started: float, initial: float, maximum: float) -> None:
        self.started = started
        self.initial = max(MIN_GAP, initial)
        self.maximum = max(self.initial, maximum)
        self.moving: deque[Reading] = deque(maxlen=RATE_WINDOW)  # readings where the count had grown
        self.last: Reading | None = None
        self.idle_readings = 0  # readings in a row that showed no progress

    def observe(self, reading: Reading) -> None:
        """Takes one successful status reading."""
        grew = reading.processed > 0 and (self.last is None or reading.processed > self.last.processed)
        if grew:
            if self.last is not None and self.last.processed > 0 and not self.moving:
                self.moving.append(self.last)  # the previous reading already showed work: a rate point
            self.moving.append(reading)
            self.idle_readings = 0
        else:
            self.idle_readings += 1
            if reading.processed == 0 or (self.last is not None and reading.processed < self.last.processed):
                self.moving.clear()  # a count going back means the estimate is worthless
        self.last = reading

    def rate(self) -> float | None:
        """Rows per second over the recent readings that showed progress; None before two of them."""
        if len(self.moving) < 2:
            return None
        first, last = self.moving[0], self.moving[-1]
        if last.at <= first.at or last.processed <= first.processed:
            return None
        return (last.processed - first.processed) / (last.at - first.at)

    def eta(self, now: float) -> float | None:
        """Seconds from `now` until the set should be done, or None when no rate is known yet."""
        rate = self.rate()
        if rate is None or self.last is None or self.idle_readings:
            return None
        return max(0.0, self.last.at + self.last.remaining / rate - now)

    def floor(self, now: float) -> float:
        """The shortest pause allowed now."""
        return max(MIN_GAP, min(MIN_SHARE * (now - self.started), self.maximum / 4))

    def next_pause(self, now: float) -> float:
        """How long to wait before the next reading."""
        floor = self.floor(now)
        eta = self.eta(now)
        if eta is not None:
            half = eta / 2
            if half >= floor:
                return min(self.maximum, half)
            margin = FINISH_MARGIN + FINISH_MARGIN_SHARE * eta
            return min(self.maximum, max(floor, eta + margin))
        if self.last is not None and self.last.processed > 0 and self.idle_readings == 0:
            # Work has just become visible: read again soon to learn the rate.
            return min(self.maximum, max(floor, self.initial / 4))
        return self.backoff(floor)

    def backoff(self, floor: float) -> float:
        """Nothing is moving: capped exponential back-off from poll_initial_seconds."""
        steps = max(0, self.idle_readings - 1)
        return min(self.maximum, max(floor, self.initial * 2.0 ** min(steps, 32)))
