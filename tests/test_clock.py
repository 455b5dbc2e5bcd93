"""The injected clock: the real one sleeps and wakes early for a stop; times are UTC."""

from __future__ import annotations

import threading

from agent.clock import SYSTEM_CLOCK, utcnow


def test_utc_and_a_stop_ends_a_sleep_at_once() -> None:
    assert utcnow().utcoffset() is not None and utcnow().utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    stop = threading.Event()
    stop.set()
    assert SYSTEM_CLOCK.sleep(3600, stop) is True  # returns at once: the caller should stop
    assert SYSTEM_CLOCK.sleep(0) is False
    assert SYSTEM_CLOCK.monotonic() <= SYSTEM_CLOCK.monotonic()
