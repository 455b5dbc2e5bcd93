"""The one retry policy: capped exponential back-off, Retry-After honoured, only retryable errors retried."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from agent.errors import AgentError, TargetError
from agent.retry import RetryPolicy, parse_retry_after, retrying
from tests.support.clock import FakeClock


def test_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=6, first_delay=1.0, factor=2.0, cap=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(first_delay=1.0, retry_after_cap=30.0)
    assert policy.delay(1, retry_after=12.0) == 12.0  # never sooner than the server asked
    assert policy.delay(1, retry_after=0.5) == 1.0  # never sooner than our own back-off
    assert policy.delay(1, retry_after=3600.0) == 30.0  # never absurdly long


def test_retry_after_header_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 11, 29, 7, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_retrying_retries_retryable_errors_with_the_policys_pauses(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TargetError("HTTP 503", retryable=True, retry_after=4.0 if len(calls) == 2 else None)
        return "done"

    policy = RetryPolicy(attempts=5, first_delay=1.0)
    assert retrying(flaky, policy, what="posting x", clock=clock) == "done"
    assert clock.sleeps == [1.0, 4.0]
    assert caplog.text.count("posting x failed (attempt") == 2 and "Traceback" not in caplog.text


def test_final_errors_are_not_retried_and_the_last_error_comes_out() -> None:
    clock = FakeClock()
    with pytest.raises(TargetError, match="wrong password"):
        retrying(lambda: (_ for _ in ()).throw(TargetError("wrong password")), RetryPolicy(), what="x", clock=clock)
    assert clock.sleeps == []

    def always() -> None:
        raise AgentError("still down", retryable=True)

    with pytest.raises(AgentError, match="still down"):
        retrying(always, RetryPolicy(attempts=3, first_delay=0.5), what="x", clock=clock)
    assert clock.sleeps == [0.5, 1.0]
