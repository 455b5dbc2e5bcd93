"""Logging set-up: one line per step, fit for journald, files and log shippers, never a secret.

A message is always one line: control characters in it (a file named with a newline) are escaped
(`agent.printable`). Every handler gets a filter that replaces each configured secret with `***`, so even a library's
debug line or an exception message that quotes a URL with credentials cannot leak one.

Times are UTC with a `Z` (`2026-11-22T07:00:05.123Z`), like every other time the agent shows: a log
line is compared with Learn's logs and the emails, never with the server's local clock. Under
systemd, stderr goes to journald; then each line starts with its syslog priority (`<4>` for a
warning), which journald strips and stores, so `journalctl -p warning` shows exactly the warnings
and errors. The prefix is used only when `JOURNAL_STREAM` names the stream stderr really is (as
systemd documents), so a command run by hand from a service's shell does not get it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import IO

from agent.printable import printable, printable_lines

LOG_FORMATS = ("text", "json")
# Python levels → syslog priorities (sd-daemon(3)): debug 7, info 6, warning 4, error 3, critical 2.
SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
QUIET = logging.CRITICAL + 10  # a console level that lets nothing through (`run --quiet`)


def utc_stamp(created: float) -> str:
    """`2026-11-22T07:00:05.123Z`: a record's time in UTC, to the millisecond.

    The date and time to the second are formatted once per second (`_utc_second`): a burst logs
    thousands of lines a second, and formatting a datetime was a tenth of the cost of each line."""
    second = math.floor(created)
    micro = round((created - second) * 1_000_000)
    if micro == 1_000_000:  # rounds up into the next second, as datetime.fromtimestamp does
        second, micro = second + 1, 0
    return f"{_utc_second(second)}.{micro // 1000:03d}Z"


@functools.lru_cache(maxsize=8)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def syslog_priority(levelno: int) -> int:
    for level, priority in SYSLOG_PRIORITIES:
        if levelno >= level:
            return priority
    return 7


def stderr_is_journal(environ: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> bool:
    """True when stderr is the journald stream systemd connected (`JOURNAL_STREAM=dev:inode`)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream if stream is not None else sys.stderr).fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class TextFormatter(logging.Formatter):
    """`2026-11-22T07:00:05.123Z INFO    message`, optionally with journald's `<N>` on every line."""

    def __init__(self, *, journald: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s")
        self.journald = journald

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_stamp(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        """One record, one line: a newline or ESC in a file name is escaped, so it cannot forge a
        second log line or repaint a terminal (a traceback, added after this, keeps its lines)."""
        record.message = printable(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journald:
            return text
        # journald reads the prefix per line: a traceback's lines keep the record's priority too.
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


class RedactingFilter(logging.Filter):
    """Replaces every known secret in the rendered message (and exception text) with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Secrets become known after the config is read; longest first so overlaps redact fully."""
        merged = {s for s in (*self.secrets, *secrets) if s and len(s) >= 3}
        self.secrets = sorted(merged, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = self.redact(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(formatted)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception); under journald, `<N>` first."""

    def __init__(self, *, journald: bool = False) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": utc_stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": printable_lines(record.getMessage()),  # JSON escapes \n itself; this the rest
        }
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        text = json.dumps(payload, ensure_ascii=False)
        return f"<{syslog_priority(record.levelno)}>{text}" if self.journald else text


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]  # subscripting fails at run time on 3.10
    """Writes to whatever sys.stderr is at the moment of each record, not the one at set-up.

    Why: a handler that keeps the set-up stream writes into a closed file once a caller (a test
    harness, a wrapper that captures output) swaps stderr back, and late records from background
    threads (SMTP, watcher) would then fail.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        """Ignored: the stream is always the current sys.stderr."""


_filter = RedactingFilter()


def setup_logging(verbose: bool = False, fmt: str = "text", *, console_level: int | None = None) -> None:
    """Configure the root logger to stderr; call once per process (the CLI does).

    `console_level` raises the threshold of what reaches stderr (e.g. WARNING for `post`, which
    narrates its steps itself; QUIET for `run --quiet`); -v still shows everything.
    """
    handler = _CurrentStderr()
    journald = stderr_is_journal()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(journald=journald))
    else:
        handler.setFormatter(TextFormatter(journald=journald))
    if console_level is not None and not verbose:
        handler.setLevel(console_level)
    handler.addFilter(_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def redact(text: str) -> str:
    """Text printed outside the log (a plain error line) with every known secret replaced by ***."""
    return _filter.redact(text)


def register_secrets(secrets: Iterable[str]) -> None:
    """Make these values unprintable in every log line from now on."""
    _filter.add(secrets)
