"""The upload progress line `post` shows on a terminal: bytes sent, rate, time left.

Why: a 300 MB file over a slow link takes minutes, and a silent terminal looks like a hang (an admin
then presses Ctrl-C in the middle of an upload). The line is redrawn in place at most a few times a
second and ends with one "uploaded" line; when the output is not a terminal (a pipe, a log, cron)
`post` makes no meter at all, so nothing extra is printed.
"""

from __future__ import annotations

from typing import TextIO

from agent.clock import SYSTEM_CLOCK, Clock
from agent.wording import upload_line

REDRAW_SECONDS = 0.25


class UploadMeter:
    """An `UploadProgress` callback drawing one self-overwriting line on `stream` (a terminal)."""

    def __init__(self, stream: TextIO, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.stream = stream
        self.clock = clock
        self._started: float | None = None
        self._drawn_at = float("-inf")
        self._width = 0

    def __call__(self, sent: int, total: int) -> None:
        now = self.clock.monotonic()
        if self._started is None or sent < 1:
            self._started, self._drawn_at, self._width = now, float("-inf"), 0  # a new upload (or a retry)
        elapsed = now - self._started
        if sent >= total:
            self._draw(upload_line(sent, total, elapsed, done=True), end="\n")
            self._started = None
        elif now - self._drawn_at >= REDRAW_SECONDS:
            self._draw(upload_line(sent, total, elapsed), end="")
            self._drawn_at = now

    def _draw(self, line: str, end: str) -> None:
        padding = " " * max(0, self._width - len(line))  # wipe what a longer earlier line left
        self.stream.write(f"\r{line}{padding}{end}")
        self.stream.flush()
        self._width = 0 if end else len(line)


def terminal_meter(stream: TextIO) -> UploadMeter | None:
    """A meter when `stream` is a terminal; None (nothing extra printed) when it is piped."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return None
    return UploadMeter(stream) if interactive else None
