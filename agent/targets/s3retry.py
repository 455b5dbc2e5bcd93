"""S3's `Retry-After` on 429/503 honoured, inside botocore's own retries.

Why a hook and not a loop around the call: botocore already retries throttling and 5xx answers
(`standard` mode), per request, and that matters for a multipart upload: a part that meets a 503 is
sent again on its own instead of the whole file. But botocore only reads Amazon's
`x-amz-retry-after` (and then waits at most 5 s more than its jitter); a plain `Retry-After`, as S3
-compatible stores and proxies send with 429/503, is ignored, so the next try comes at once and is
throttled again. This hook runs first on botocore's `needs-retry` event: for a 429/503 carrying
`Retry-After` it waits what `agent.retry.RetryPolicy` says (never less than asked, never more than
the policy's `retry_after_cap`) on the injected clock, then tells botocore to send again at once.
Every other answer is left to botocore's own rules, so the number of attempts stays botocore's.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.clock import Clock
from agent.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

THROTTLED = (429, 503)


class RetryAfterHook:
    """botocore `needs-retry.s3` handler: waits out a 429/503 `Retry-After` (capped) on `clock`."""

    def __init__(self, policy: RetryPolicy, clock: Clock, target: str) -> None:
        self.policy = policy
        self.clock = clock
        self.target = target
        self.waits: list[float] = []  # every pause this hook took, for the log and for tests

    def register(self, client: Any) -> None:
        """Ahead of botocore's retry handler, so a Retry-After answer is decided here."""
        client.meta.events.register_first("needs-retry.s3", self, unique_id=f"feed-agent-retry-after-{id(self)}")

    def __call__(self, response: Any = None, attempts: int = 0, operation: Any = None, **_: Any) -> float | None:
        """0 (send again now: the wait is done) for a throttled answer with Retry-After; else None."""
        if response is None or attempts >= self.policy.attempts:
            return None  # no answer (a network error), or out of attempts: botocore decides
        http = response[0]
        if http.status_code not in THROTTLED:
            return None
        asked = parse_retry_after(http.headers.get("Retry-After"))
        if asked is None:
            return None
        pause = self.policy.delay(attempts, asked)
        name = getattr(operation, "name", "request")
        log.warning(
            "target %s: S3 answered HTTP %d to %s (attempt %d of %d) asking to retry after %g s; retrying in %.1f s",
            self.target,
            http.status_code,
            name,
            attempts,
            self.policy.attempts,
            asked,
            pause,
        )
        self.waits.append(pause)
        self.clock.sleep(pause)
        return 0
