"""Data sets and their processing model, plus what Learn remembers between uploads.

The model: an accepted data set shows "nothing queued yet" (every count zero) for `start_delay`
seconds, as a busy Learn does before its queue picks the set up; then its records are processed at
`rows_per_second`, in file order, so counts grow smoothly and a client can estimate the finish.
Errors and warnings are counted exactly as the processed records reach them, and they are the
same records the log shows as Error and Warning entries. Data sets are checked when they arrive,
in arrival order, as if Learn's queue ran them one by one; they then progress independently.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.simulator.logentries import DataSetLog
from agent.simulator.objects import STORED_KEY_COLUMN
from agent.simulator.rows import MAX_REMEMBERED_KEYS, RowLog

MAX_PROBLEMS = 200  # problem sentences DataSetInfo carries, for assertions and the console


@dataclass(frozen=True)
class Upload:
    """One accepted upload, as the server received it."""

    slug: str
    operation: str
    uid: str
    sha256: str
    size: int
    rows: int
    content_type: str
    received_at: datetime
    chunked: bool = False  # Transfer-Encoding: chunked rather than Content-Length
    errors: int = 0
    warnings: int = 0
    answered: bool = True  # False when the fault withhold-answers kept the answer back
    encoding: str = "utf-8"  # how Learn read it: utf-8 / utf-16-le / utf-16-be after a byte-order mark, else iso-8859-1


@dataclass(frozen=True)
class DataSetInfo:
    """The state of one data set at the moment it was asked for."""

    uid: str
    slug: str
    operation: str
    rows: int
    queued: int
    completed: int
    warnings: int
    errors: int
    finished: bool
    stuck: bool
    problems: tuple[str, ...] = ()
    begun: bool = True  # False while Learn shows nothing queued yet


class DataSet:
    """One accepted upload on its way through the simulated queue."""

    def __init__(
        self,
        *,
        uid: str,
        operation: str,
        rows: RowLog,
        accepted: float,
        accepted_wall: datetime,
        start_delay: float,
        rows_per_second: float,
        stuck: bool,
        first_log_id: int,
    ) -> None:
        self.uid = uid
        self.slug = rows.slug
        self.operation = operation
        self.records = rows
        self.accepted_wall = accepted_wall
        self.begins = accepted + start_delay
        self.begins_wall = accepted_wall + timedelta(seconds=start_delay)
        self.rate = rows_per_second
        self.stuck = stuck
        self.log = DataSetLog(uid, operation, rows, first_log_id, self.begins_wall, rows_per_second)

    @property
    def rows(self) -> int:
        return self.records.rows

    def begun(self, now: float) -> bool:
        return now >= self.begins

    def processed(self, now: float) -> int:
        if self.stuck or not self.begun(now):
            return 0
        return min(self.rows, int((now - self.begins) * self.rate))

    def finished(self, now: float) -> bool:
        return not self.stuck and self.begun(now) and self.processed(now) == self.rows

    @property
    def finishes_at(self) -> float | None:
        """time.monotonic() at which the last record is processed; None for a stuck data set."""
        return None if self.stuck else self.begins + self.rows / self.rate

    def info(self, now: float, *, with_problems: bool = False) -> DataSetInfo:
        begun = self.begun(now)
        done = self.processed(now)
        errors = bisect_left(self.records.error_rows, done)
        warnings = bisect_left(self.records.problem_rows, done) - errors
        problems: tuple[str, ...] = ()
        if with_problems:
            count = min(MAX_PROBLEMS, self.log.count("Warning"))
            problems = tuple(entry.message for entry in self.log.page("Warning", 0, count))
        return DataSetInfo(
            uid=self.uid,
            slug=self.slug,
            operation=self.operation,
            rows=self.rows,
            queued=self.rows - done if begun else 0,
            completed=done - errors - warnings,
            warnings=warnings,
            errors=errors,
            finished=self.finished(now),
            stuck=self.stuck,
            problems=problems,
            begun=begun,
        )

    def last_entry(self, now: float) -> datetime:
        if not self.begun(now):
            return self.accepted_wall
        return self.begins_wall + timedelta(seconds=self.processed(now) / self.rate)


class KeyStore:
    """What Learn has stored: keys of people, courses and organizations (bounded)."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {kind: set() for kind in STORED_KEY_COLUMN}
        self.overflowed: set[str] = set()
        self._lock = threading.Lock()

    def knows(self, kind: str, key: str) -> bool:
        with self._lock:
            return kind in self.overflowed or key in self._keys[kind]

    def apply(self, kind: str, keys: set[str], *, forget: bool) -> None:
        with self._lock:
            stored = self._keys[kind]
            if forget:
                stored.difference_update(keys)
                return
            stored.update(keys)
            if len(stored) > MAX_REMEMBERED_KEYS:
                self.overflowed.add(kind)
                stored.clear()
