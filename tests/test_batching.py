"""When a route's batch goes: the window after the last change, the longest wait, never without a ready file."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

from agent.batching import batch_due
from agent.readiness import Candidate
from agent.settings import AgentSettings

SETTINGS = AgentSettings(work_dir=Path("var"), batch_window_seconds=30.0, batch_max_wait_seconds=300.0)


def candidate(name: str, first_seen: float, last_change: float, *, ready: bool = True) -> Candidate:
    arrived = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return Candidate("sis", Path(name), first_seen, last_change, arrived, ready, None)


def test_a_batch_goes_a_window_after_its_last_change() -> None:
    pending = [candidate("a.txt", 100.0, 110.0), candidate("b.txt", 105.0, 120.0, ready=False)]
    assert batch_due(pending, SETTINGS) == 150.0  # the file still changing holds the whole batch


def test_a_batch_that_keeps_changing_goes_after_its_longest_wait() -> None:
    pending = [candidate("a.txt", 100.0, 100.0), candidate("b.txt", 150.0, 390.0)]
    assert batch_due(pending, SETTINGS) == 400.0


def test_no_batch_while_nothing_is_ready() -> None:
    assert batch_due([candidate("a.txt", 100.0, 100.0, ready=False)], SETTINGS) == math.inf
    assert batch_due([], SETTINGS) == math.inf
