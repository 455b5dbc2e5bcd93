"""The one root of every failure feed-agent expects, explains and maps to an exit status.

Why one root: the command line turns any `AgentError` into one plain line and the contract's exit
status (2 for configuration, 1 for everything else), so an admin never sees a Python traceback for
something we foresaw (an unusable journal, a refused password, a full disk). Each subclass says
what failed; `retryable` and `retry_after` tell the one retry policy (`agent.retry`) whether the
same request could succeed later and when the other side asked us to come back.

Messages are written for the admin and never contain a secret.
"""

from __future__ import annotations

import errno


class AgentError(Exception):
    """A failure explained in plain words, safe to show."""

    exit_status = 1

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class ConfigError(AgentError):
    """A configuration problem, phrased for the admin who has to fix it (exit status 2)."""

    exit_status = 2


class JournalError(AgentError):
    """The journal (SQLite ledger) cannot be used; the message says what an admin should do."""


class FolderError(AgentError):
    """A folder the agent needs is missing, unreadable or full."""


class AlreadyRunning(AgentError):
    """Another `watch` or `run` works on the same work folder."""


class TargetError(AgentError):
    """A destination refused or could not be reached.

    `retryable`: the same request could succeed later (network, 5xx, 429); 401/403/404 and
    rejections are final. `http_status` is the answer's status code when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.http_status = http_status


class DeliveryUnknown(TargetError):
    """The whole body went out but no answer came (a read timeout, a dropped connection).

    The destination may have accepted the file, so it must not be sent again automatically: the
    pipeline ends it as UNCONFIRMED (failed/, dependents held) and the report says how to check.
    Never retryable, by construction.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class MailError(AgentError):
    """Why a message could not be delivered; `retryable` when it could go through later (4xx, network)."""

    @property
    def temporary(self) -> bool:
        return self.retryable


class MailUnconfirmed(MailError):
    """The whole message went out but the server's answer never came: it may have been accepted.

    Such a report is not sent again automatically (a second copy would be a duplicate if the first
    arrived); the mail spool sets it aside and says so."""


class BatchIncomplete(AgentError):
    """Some files of a batch could not be taken to their end (each one's error is logged); the rest
    went on. The batch stays open in the journal, so recovery takes those files up again, in order."""


class StopRequested(AgentError):
    """The agent is stopping (a signal): the current step ends and the file resumes on the next start."""

    def __init__(self, message: str = "feed-agent is stopping") -> None:
        super().__init__(message)


def os_error_message(exc: OSError) -> str:
    """An operating-system error in one line an admin can act on (which file, what went wrong)."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:  # a move: the destination's folder is as likely the one refusing
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc) or type(exc).__name__
    hints = {
        errno.ENOSPC: "free some space on that disk",
        errno.EACCES: "check that the agent's user may read and write there",
        errno.EROFS: "the filesystem is mounted read-only",
        errno.ENOENT: "check that it exists (and that its share is mounted)",
    }
    hint = hints.get(exc.errno or 0)
    text = f"{where}: {what}" if where else what
    return f"{text}; {hint}" if hint else text


def foreseen(exc: BaseException) -> bool:
    """An error we foresee (a folder, a disk, the journal, a destination): its message says it all, no traceback."""
    return isinstance(exc, (OSError, AgentError))


def describe(exc: BaseException) -> str:
    """Any error in one line an admin can read (which file, what went wrong)."""
    if isinstance(exc, AgentError):
        return exc.message
    if isinstance(exc, OSError):
        return os_error_message(exc)
    return f"{type(exc).__name__}: {exc}"
