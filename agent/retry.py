"""The one retry policy: how many attempts, how long between them, and what the server asked for.

Learn, S3, the job API, the mailer and the daemon's recovery all retry the same way: capped
exponential back-off (`first_delay`, `factor`, `cap`), and a `Retry-After` from the other side is
honoured (never waiting less than it asks, never more than `retry_after_cap`). Only errors that say
they are `retryable` are retried; a wrong password is never tried twice.
"""

from __future__ import annotations

import email.utils
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import AgentError, StopRequested

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (the first included) and the pause after each failed one."""

    attempts: int = 5
    first_delay: float = 1.0
    cap: float = 60.0
    factor: float = 2.0
    retry_after_cap: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The pause after failed attempt number `attempt` (1-based)."""
        backoff = min(self.cap, self.first_delay * self.factor ** max(0, attempt - 1))
        if retry_after is not None:
            return min(self.retry_after_cap, max(backoff, retry_after))
        return backoff


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    moment = now or datetime.now(timezone.utc)
    return max(0.0, (when - moment).total_seconds())


def retrying(
    action: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    clock: Clock = SYSTEM_CLOCK,
    on_retry: Callable[[int, AgentError, float], None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Run `action`, retrying retryable AgentErrors by `policy`; the last error is raised as it came.

    Each retry logs one warning line (no traceback) naming `what`, the attempt and the pause. A set
    `stop` ends a pause at once with StopRequested (a service stop must not wait out a back-off).
    """
    attempt = 1
    while True:
        try:
            return action()
        except AgentError as exc:
            if not exc.retryable or attempt >= policy.attempts:
                raise
            pause = policy.delay(attempt, exc.retry_after)
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.1f s",
                what,
                attempt,
                policy.attempts,
                exc.message,
                pause,
            )
            if on_retry is not None:
                on_retry(attempt, exc, pause)
            if clock.sleep(pause, stop):
                raise StopRequested() from None
            attempt += 1
