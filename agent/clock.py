"""Time, injected: the wall clock (UTC), the monotonic clock, and sleeping.

Why: retries, polling and readiness all wait, and a test that really waits is slow and flaky. Code
that waits takes a `Clock` (default `SYSTEM_CLOCK`); tests pass a fake one that advances when slept.
Waiting on an `Event` goes through the clock too, so a stop request still interrupts a pause.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (every time the agent stores or shows is UTC)."""
    return datetime.now(timezone.utc)


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, aware, UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for deadlines and intervals)."""
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Pause; returns True early when `stop` is set (then the caller should stop)."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None:
            return stop.wait(max(0.0, seconds))
        if seconds > 0:
            time.sleep(seconds)
        return False


SYSTEM_CLOCK: Clock = SystemClock()
