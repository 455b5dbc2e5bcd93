"""One error root: every expected failure is an AgentError with a plain message and an exit status."""

from __future__ import annotations

import errno

from agent.errors import AgentError, ConfigError, JournalError, MailError, TargetError, os_error_message


def test_exit_statuses_follow_the_contract() -> None:
    assert ConfigError("x").exit_status == 2
    assert all(cls("x").exit_status == 1 for cls in (JournalError, TargetError, MailError, AgentError))
    assert all(issubclass(cls, AgentError) for cls in (ConfigError, JournalError, TargetError, MailError))


def test_retryable_is_what_the_retry_policy_reads() -> None:
    assert MailError("4xx", retryable=True).temporary
    error = TargetError("busy", retryable=True, http_status=429, retry_after=30.0)
    assert (error.retryable, error.http_status, error.retry_after) == (True, 429, 30.0)


def test_os_errors_become_one_line_that_says_what_to_do() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/var/lib/feed-agent/archive/x.txt")
    assert os_error_message(full) == (
        "/var/lib/feed-agent/archive/x.txt: No space left on device; free some space on that disk"
    )
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/drop")
    assert "may read and write there" in os_error_message(denied)
    assert os_error_message(OSError("odd")) == "odd"
