"""The one way tests wait: poll a condition until it holds, with a generous timeout and a clear failure.

Tests never sleep a fixed time and then assert; they wait for a positive signal (this helper), or
use an injected clock (`tests.support.clock.FakeClock`) where the thing to test is "not yet".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 30.0  # generous: CI is a busy 2-core machine; a passing test never waits this long


def wait_for(condition: Callable[[], T], what: str = "condition", timeout: float = TIMEOUT, step: float = 0.02) -> T:
    """Call `condition` until it returns something truthy, and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)
