"""Waiting for a positive signal: poll a condition until it holds, fail with what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
TIMEOUT = 20.0


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = TIMEOUT) -> T:
    """Poll until `condition()` is truthy and return its value; fail naming `what` after a generous
    timeout (a timeout is never a pass: tests only wait for things that must happen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)
