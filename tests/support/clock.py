"""A fake Clock for tests: sleeping advances time at once and is recorded, so waits cost nothing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class FakeClock:
    """Implements agent.clock.Clock. `sleeps` lists every pause asked for, in order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 29, 7, 0, tzinfo=timezone.utc)
        self._monotonic = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._monotonic += seconds
            self._now += timedelta(seconds=seconds)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return True
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        return stop is not None and stop.is_set()
