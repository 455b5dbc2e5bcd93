"""Logging set-up: one line per step, fit for journald, files and log shippers, never a secret.

Every handler gets a filter that replaces each configured secret with `***`, so even a library's
debug line or an exception message that quotes a URL with credentials cannot leak one.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import datetime, timezone

LOG_FORMATS = ("text", "json")


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
    """One JSON object per line: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


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


def setup_logging(verbose: bool = False, fmt: str = "text") -> None:
    """Configure the root logger to stderr; call once per process (the CLI does)."""
    handler = _CurrentStderr()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def register_secrets(secrets: Iterable[str]) -> None:
    """Make these values unprintable in every log line from now on."""
    _filter.add(secrets)
