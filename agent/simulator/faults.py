"""Switchable misbehaviour of the simulated Learn, for rehearsing bad days.

Every fault here is invented in the sense that the reference has no capture of it; each one is a
shape real clients meet anyway (an SSO page in front of Learn, an answer lost on the way back, a
throttling load balancer). Counters count down as requests use them up; every field may be changed
while the server runs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Faults:
    """The fault modes; `feed-agent simulate --help` lists the matching flags."""

    # Flat-file uploads
    fail_uploads: int = 0  # the next N uploads answer 500 with a stack trace (body not accepted)
    drop_uploads: int = 0  # the next N uploads are read, NOT accepted, and the connection is closed unanswered
    withhold_answers: int = 0  # the next N uploads are read and ACCEPTED, but no answer is ever sent
    withhold_seconds: float = 0.0  # how long a withheld answer holds the connection (0: until the client leaves)
    throttle_uploads: int = 0  # the next N uploads answer 429 with Retry-After (body not accepted)
    no_code: bool = False  # uploads answer 200 with a page that has no reference code (not accepted)
    html_page: bool = False  # uploads answer 200 with an SSO sign-in page holding a 32-hex nonce (not accepted)
    stuck: bool = False  # data sets accepted meanwhile never leave the queue
    slow_seconds: float = 0.0  # every authenticated answer is delayed this long
    read_bytes_per_second: float = 0.0  # upload bodies are read at most this fast (a slow link); 0: at once
    # dataSetStatus
    status_failures: int = 0  # the next N status requests fail with status_failure_code
    status_failure_code: int = 503
    # Retry-After (seconds) on 429 and 503 answers; None sends none
    retry_after: int | None = 1
    # REST (OAuth2 token and SIS log)
    rest_forbidden: bool = False  # the REST user lacks system.dataintegrations.log.VIEW: log calls answer 403
    rest_throttle: int = 0  # the next N REST calls answer 429 with Retry-After
    log_locked_seconds: float = 0.0  # the log keeps answering 423 this long after processing ends

    @property
    def status_503(self) -> int:
        """The older name of `status_failures` (with code 503), kept for existing callers."""
        return self.status_failures if self.status_failure_code == 503 else 0

    @status_503.setter
    def status_503(self, count: int) -> None:
        self.status_failures = count
        self.status_failure_code = 503

    def describe(self) -> str:
        """The faults that differ from a healthy server, e.g. "fail_uploads=2, stuck=True"."""
        healthy = Faults()
        active = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(healthy, f.name)
        ]
        return ", ".join(active) if active else "none"

    def retry_headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
