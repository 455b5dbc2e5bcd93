"""Failure episodes: a step that keeps failing the same way is retried on a real back-off and told once.

Why: a drop folder the agent cannot write, an archive/ that refuses files or a full disk make the
same step fail again and again. Retrying it every turn of the loop floods the log (thousands of
lines, a traceback each) and still tells the admin nothing. Here each kind of failure, named by its
key (`recovery`, `route:NAME`, `drop:PATH`, `archive`, `failed`), is an episode: the step is tried
again only after the pause the log announced (`RetryPolicy`, capped), each attempt logs one line (a
traceback only on the first attempt, and only for an error nobody foresaw), and the admin gets one
email when the episode starts and one when it clears.

Episodes live in the journal's `troubles` table (one row per key while it lasts, never one per
attempt), so a restart neither emails again nor forgets to say that it cleared. When the journal
itself cannot be written (the disk is full), the episode is kept in memory and told all the same.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import AgentError, BatchIncomplete, describe, foreseen
from agent.journal import Journal
from agent.journal_schema import TroubleRecord
from agent.records import Reporter, TroubleNotice
from agent.retry import RetryPolicy
from agent.wording import format_duration, format_time
from agent.wording_troubles import trouble_advice, trouble_title

log = logging.getLogger(__name__)


def root_cause(exc: BaseException) -> BaseException:
    """The error under our own wrapping (a batch or a recovery left incomplete), for its traceback."""
    while isinstance(exc, BatchIncomplete) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


class Troubles:
    """The open failure episodes of one agent: when each step may be tried again, and their emails."""

    def __init__(
        self, journal: Journal, reporter: Reporter, *, policy: RetryPolicy, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.journal = journal
        self.reporter = reporter
        self.policy = policy
        self.clock = clock
        self._open: dict[str, TroubleRecord] = {}
        self._retry_at: dict[str, float] = {}  # monotonic; a key absent here may be tried now
        self._unjournaled: set[str] = set()  # episodes the journal could not take (a full disk)
        self._failed_here: set[str] = set()  # episodes with a failed attempt in this process
        try:
            self._open = {record.key: record for record in journal.troubles()}
        except AgentError as exc:
            log.warning("open failure episodes could not be read from the journal: %s", exc.message)

    def due(self, key: str) -> bool:
        """May the step `key` be tried now (no episode, or its pause is over)?"""
        at = self._retry_at.get(key)
        return at is None or self.clock.monotonic() >= at

    def retrying(self) -> bool:
        """Has a step failed in this process and not worked since (the loop keeps its short turn)?
        An episode only read back from the journal waits for its step to come round by itself."""
        return bool(self._retry_at)

    def rest(self, key: str) -> None:
        """Nothing is waiting on the step `key` any more: no retry is due (the episode stays open
        until the step runs again and works, e.g. the next file that arrives in a refusing folder)."""
        self._retry_at.pop(key, None)

    def failing(self, key: str) -> bool:
        return key in self._open

    def open_episodes(self, *, failed_here: bool = False) -> list[TroubleRecord]:
        """The episodes still open; `failed_here`: only those that failed in this process (`run`'s
        closing lines name what failed tonight, not a folder no file came through since)."""
        return [record for key, record in self._open.items() if not failed_here or key in self._failed_here]

    def forget(self, key: str) -> None:
        """Drop an episode whose step no longer exists (a route taken out of the configuration)."""
        self._retry_at.pop(key, None)
        if self._open.pop(key, None) is None:
            return
        try:
            self.journal.trouble_cleared(key)
        except AgentError as exc:
            log.warning("the old episode %s could not be removed from the journal: %s", key, exc.message)

    def failed(self, key: str, exc: BaseException, *, folder: Path | None = None, told: bool = False) -> float:
        """One more failed attempt of `key`: log it, pause the step, email the episode's start once.

        `folder` is where the fix is needed (for the advice); `told` means another email already
        said it (a per-file report), so the episode's start is not emailed again. Returns the pause.
        """
        now = self.clock.now()
        self._failed_here.add(key)
        record = self._count(key, describe(exc), now)
        delay = self.policy.delay(record.attempts)
        self._retry_at[key] = self.clock.monotonic() + delay
        line = "%s (attempt %d, failing since %s): %s; next try in %s"
        values = (
            trouble_title(key),
            record.attempts,
            format_time(record.since),
            record.problem,
            format_duration(delay),
        )
        cause = root_cause(exc)
        if record.attempts == 1 and not foreseen(cause):
            log.error(line, *values, exc_info=cause)  # a bug: its traceback once, never again
        else:
            log.warning(line, *values)
        if record.alerted_at is None:
            self._alert(record, trouble_advice(exc, folder), delay, now, told=told)
        return delay

    def cleared(self, key: str) -> None:
        """The step `key` worked: an open episode ends (logged, and emailed if its start was)."""
        record = self._open.pop(key, None)
        self._retry_at.pop(key, None)
        self._unjournaled.discard(key)
        self._failed_here.discard(key)
        if record is None:
            return
        try:
            record = self.journal.trouble_cleared(key) or record
        except AgentError as exc:
            log.warning("the end of the episode %s could not be journaled: %s", key, exc.message)
        log.info(
            "%s: works again after %d failed attempt(s) since %s",
            trouble_title(key),
            record.attempts,
            format_time(record.since),
        )
        if record.alerted_at is not None:
            notice = TroubleNotice(
                key=key,
                problem=record.problem,
                advice="",
                since=record.since,
                attempts=record.attempts,
                cleared_at=self.clock.now(),
            )
            self.reporter.trouble(notice)

    # -- internals -----------------------------------------------------------------------------

    def _count(self, key: str, problem: str, now: datetime) -> TroubleRecord:
        try:
            record = self.journal.trouble_failed(key, problem, now)
        except AgentError as exc:  # the journal cannot be written (a full disk): count in memory
            if key not in self._unjournaled:  # said once per episode, not once per attempt
                log.warning("the failure of %s could not be journaled: %s", key, exc.message)
            self._unjournaled.add(key)
            known = self._open.get(key)
            record = TroubleRecord(
                key=key,
                since=known.since if known else now,
                attempts=(known.attempts if known else 0) + 1,
                problem=problem,
                alerted_at=known.alerted_at if known else None,
            )
        self._open[key] = record
        return record

    def _alert(self, record: TroubleRecord, advice: str, delay: float, now: datetime, *, told: bool) -> None:
        try:
            claimed = record.key in self._unjournaled or self.journal.trouble_alerted(record.key, now)
        except AgentError:
            claimed = True  # not journaled: the in-memory record below keeps it to one email
        self._open[record.key] = TroubleRecord(record.key, record.since, record.attempts, record.problem, now)
        if not claimed or told:
            return
        notice = TroubleNotice(
            key=record.key,
            problem=record.problem,
            advice=advice,
            since=record.since,
            attempts=record.attempts,
            retry_seconds=delay,
        )
        self.reporter.trouble(notice)
