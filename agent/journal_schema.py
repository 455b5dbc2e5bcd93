"""The journal's schema: its migrations, the row records it returns, and how values are stored.

Schema versions: ``PRAGMA user_version`` holds the number of migrations applied; ``MIGRATIONS`` is
the ordered list. A new column or table is a new entry at the end (never edit an old one), so any
older journal, including an empty file (version 0), is brought up to date on open.
"""

from __future__ import annotations

import dataclasses
import enum
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.records import Receipt, Status


class FileState(str, enum.Enum):
    """Where a file stands; written before and after each step, so a restart knows what is left."""

    CLAIMING = "claiming"  # journaled with its batch, not yet moved into processing/
    CLAIMED = "claimed"  # in processing/ (inspected or not), nothing sent
    SUBMITTING = "submitting"  # the upload started; its last byte has not gone out (safe to send again)
    SENT = "sent"  # the last byte went out, no answer yet: the destination may have it (never re-sent)
    SUBMITTED = "submitted"  # the destination gave a receipt; being followed
    FINISHED = "finished"  # the outcome is decided (status journaled); not yet in archive/ or failed/
    ARCHIVED = "archived"  # delivered, in archive/
    FAILED = "failed"  # not delivered, in failed/ (or gone)
    REJECTED = "rejected"  # failed the pre-flight checks, in failed/
    HELD = "held"  # not sent on purpose (guard, or a file it depends on), in failed/
    UNCONFIRMED = "unconfirmed"  # sent whole, no answer: in failed/, never re-sent automatically

    @property
    def in_flight(self) -> bool:
        """True while a restart would still have work to do for this file."""
        return self in IN_FLIGHT_STATES


FILE_STATES = tuple(state.value for state in FileState)
IN_FLIGHT_STATES = (
    FileState.CLAIMING,
    FileState.CLAIMED,
    FileState.SUBMITTING,
    FileState.SENT,
    FileState.SUBMITTED,
    FileState.FINISHED,
)
TERMINAL_STATES = tuple(state for state in FileState if state not in IN_FLIGHT_STATES)
# The state a file ends in when it was not delivered, by its final status.
UNSENT_STATES = {
    Status.REJECTED: FileState.REJECTED,
    Status.HELD: FileState.HELD,
    Status.UNCONFIRMED: FileState.UNCONFIRMED,
}
STATUS_VALUES = tuple(status.value for status in Status)
# When a file was delivered, as the feed history orders it. An accepted file always has it (its status
# and finished_at are written in the same update), and index files_feed_history ends with it (then the
# rowid): a feed's newest deliveries are read in index order and the read stops at its limit, with no
# sort of the feed's whole history (the store notice asks before every store) and no index that every
# update of a file in flight would have to maintain.
DELIVERED_AT = "finished_at"
ACCEPTED_STATUSES = (Status.SUCCESS.value, Status.WARNINGS.value, Status.ERRORS.value)
REFRESH_OPERATIONS = ("refresh", "refreshlegacy")


class Owner(str, enum.Enum):
    """Who took a file, so a restart adopts only its own: the service never resumes an admin's post."""

    SERVICE = "service"  # `watch` or `run`
    POST = "post"  # `post`: moved into processing/
    POST_KEEP = "post-keep"  # `post --keep`: left where the admin put it

    @property
    def manual(self) -> bool:
        return self is not Owner.SERVICE


OWNERS = tuple(owner.value for owner in Owner)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema.
    (
        """CREATE TABLE meta (
               key   TEXT PRIMARY KEY,
               value TEXT NOT NULL
           )""",
        """CREATE TABLE batches (
               id          INTEGER PRIMARY KEY AUTOINCREMENT,
               route       TEXT NOT NULL,
               started_at  TEXT NOT NULL,
               finished_at TEXT,
               status      TEXT,
               files       INTEGER NOT NULL DEFAULT 0
           )""",
        """CREATE TABLE files (
               id               INTEGER PRIMARY KEY AUTOINCREMENT,
               batch_id         INTEGER REFERENCES batches(id),
               route            TEXT NOT NULL,
               target           TEXT NOT NULL,
               name             TEXT NOT NULL,
               source_path      TEXT,
               current_path     TEXT,
               sha256           TEXT,
               size             INTEGER,
               "rows"           INTEGER,
               object           TEXT,
               operation        TEXT,
               state            TEXT NOT NULL,
               status           TEXT,
               receipt          TEXT,
               reference        TEXT,
               queued           INTEGER,
               completed        INTEGER,
               warnings         INTEGER,
               errors           INTEGER,
               message          TEXT,
               arrived_at       TEXT,
               claimed_at       TEXT,
               submitted_at     TEXT,
               finished_at      TEXT,
               updated_at       TEXT NOT NULL,
               long_run_alerted INTEGER NOT NULL DEFAULT 0
           )""",
        """CREATE TABLE mail_failures (
               id          INTEGER PRIMARY KEY AUTOINCREMENT,
               subject     TEXT NOT NULL,
               error       TEXT NOT NULL,
               recorded_at TEXT NOT NULL,
               reported_at TEXT
           )""",
        "CREATE INDEX files_state ON files(state, id)",
        "CREATE INDEX files_route_arrival ON files(route, arrived_at)",
        "CREATE INDEX files_refresh_guard ON files(target, object, operation, status)",
        "CREATE INDEX files_reference ON files(reference)",
        "CREATE INDEX files_batch ON files(batch_id)",
        "CREATE INDEX mail_failures_unreported ON mail_failures(reported_at)",
    ),
    # 2: jobs that finish later (AlumnIQ): the notification URL's token digest, the deadline, the end.
    (
        """CREATE TABLE jobs (
               id           INTEGER PRIMARY KEY AUTOINCREMENT,
               file_id      INTEGER NOT NULL UNIQUE REFERENCES files(id),
               token_digest TEXT NOT NULL UNIQUE,
               state        TEXT NOT NULL,
               job_id       TEXT,
               queued_at    TEXT,
               notify_by    TEXT,
               alerted_at   TEXT,
               notified_at  TEXT,
               message      TEXT,
               payload      BLOB
           )""",
        "CREATE INDEX jobs_state_deadline ON jobs(state, notify_by)",
    ),
    # 3: Learn's record-level log of a delivered file: counts per level and where the CSV was saved.
    (
        """CREATE TABLE record_logs (
               file_id   INTEGER PRIMARY KEY REFERENCES files(id),
               errors    INTEGER NOT NULL,
               warnings  INTEGER NOT NULL,
               other     INTEGER NOT NULL,
               path      TEXT,
               complete  INTEGER NOT NULL,
               problem   TEXT NOT NULL,
               saved_at  TEXT NOT NULL
           )""",
    ),
    # 4: crash safety (issue 14): who owns a file, the moment its last byte went out, reports sent once,
    # what a claim saw (a writer that paused), and failure episodes (one email each).
    (
        "ALTER TABLE files ADD COLUMN owner TEXT NOT NULL DEFAULT 'service'",
        "ALTER TABLE files ADD COLUMN owner_pid INTEGER",
        "ALTER TABLE files ADD COLUMN sent_at TEXT",
        "ALTER TABLE files ADD COLUMN held_by TEXT",
        "ALTER TABLE files ADD COLUMN claimed_size INTEGER",
        "ALTER TABLE files ADD COLUMN claimed_mtime_ns INTEGER",
        "ALTER TABLE files ADD COLUMN reported_at TEXT",
        "UPDATE files SET reported_at = updated_at WHERE state IN ('archived', 'failed', 'rejected', 'held')",
        "ALTER TABLE batches ADD COLUMN owner TEXT NOT NULL DEFAULT 'service'",
        "ALTER TABLE batches ADD COLUMN reported_at TEXT",
        "UPDATE batches SET reported_at = finished_at WHERE finished_at IS NOT NULL",
        """CREATE TABLE troubles (
               key        TEXT PRIMARY KEY,
               since      TEXT NOT NULL,
               attempts   INTEGER NOT NULL,
               problem    TEXT NOT NULL,
               alerted_at TEXT
           )""",
        "CREATE INDEX files_unreported ON files(reported_at, state)",
        "CREATE INDEX batches_open ON batches(finished_at, reported_at)",
    ),
    # 5: feed history: the data source keys a refreshlegacy covered (its guard baseline is per key
    # set) and, for refreshes, how many keys the file disabled and added against the last delivery.
    (
        "ALTER TABLE files ADD COLUMN data_source_keys TEXT",
        "ALTER TABLE files ADD COLUMN disabled_keys INTEGER",
        "ALTER TABLE files ADD COLUMN added_keys INTEGER",
        "CREATE INDEX files_feed_history ON files(target, object, operation, finished_at)",
    ),
    # 6: batches an older agent left open (it resumed their files in new batches of their own): closed,
    # so a restart neither summarizes them again nor shows them as running for ever.
    (
        "UPDATE batches SET finished_at = started_at, reported_at = started_at "
        "WHERE finished_at IS NULL AND reported_at IS NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class FileRecord:
    """One file the agent handled: where it is, what was sent, what the destination said."""

    id: int
    batch_id: int | None
    route: str
    target: str
    name: str
    source_path: str | None
    current_path: str | None
    sha256: str | None
    size: int | None
    rows: int | None
    object: str | None
    operation: str | None
    state: FileState
    status: str | None  # a Status value
    receipt: str | None  # Receipt.to_json() text
    reference: str | None  # the receipt's reference code
    queued: int | None
    completed: int | None
    warnings: int | None
    errors: int | None
    message: str | None
    arrived_at: datetime | None
    claimed_at: datetime | None
    submitted_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    long_run_alerted: bool
    owner: Owner = Owner.SERVICE
    owner_pid: int | None = None
    sent_at: datetime | None = None  # when the last byte went out (SENT, UNCONFIRMED)
    held_by: str | None = None
    claimed_size: int | None = None  # size and mtime when claimed: a writer that paused shows here
    claimed_mtime_ns: int | None = None
    reported_at: datetime | None = None  # the per-file report was handed to the mailer
    data_source_keys: str | None = None  # refreshlegacy: the file's data source keys, comma-separated
    disabled_keys: int | None = None  # refresh: keys of the last delivery missing from this file
    added_keys: int | None = None  # refresh: keys of this file that the last delivery did not have

    @property
    def in_flight(self) -> bool:
        """True while a restart would still have work to do for this file."""
        return self.state.in_flight

    def receipt_object(self) -> Receipt | None:
        """The stored receipt, ready for Target.wait() after a restart."""
        return Receipt.from_json(self.receipt) if self.receipt else None


class JobState(str, enum.Enum):
    """A job that finishes after its file was delivered: its notification URL is out, then it ends."""

    SENDING = "sending"  # the URL is made, the job call is under way
    AWAITING = "awaiting"  # queued; waiting for the notification
    SUCCEEDED = "succeeded"
    FAILED = "failed"


OPEN_JOB_STATES = (JobState.SENDING.value, JobState.AWAITING.value)
# Jobs with their file's name, route, target and place, for reports and `status`.
JOB_SELECT = (
    "SELECT jobs.*, files.name, files.route, files.target, files.current_path "
    "FROM jobs JOIN files ON files.id = jobs.file_id"
)


@dataclass(frozen=True)
class JobRecord:
    """A queued job and its file, as the completion report, the dead-man's switch and `status` see it."""

    id: int
    file_id: int
    name: str
    route: str
    target: str
    location: str | None
    state: JobState
    job_id: str | None
    queued_at: datetime | None
    notify_by: datetime | None
    alerted_at: datetime | None
    notified_at: datetime | None
    message: str | None
    payload: bytes | None


def job_record(row: sqlite3.Row) -> JobRecord:
    payload = row["payload"]
    return JobRecord(
        id=row["id"],
        file_id=row["file_id"],
        name=row["name"],
        route=row["route"],
        target=row["target"],
        location=row["current_path"],
        state=JobState(row["state"]),
        job_id=row["job_id"],
        queued_at=from_db_time(row["queued_at"]),
        notify_by=from_db_time(row["notify_by"]),
        alerted_at=from_db_time(row["alerted_at"]),
        notified_at=from_db_time(row["notified_at"]),
        message=row["message"],
        payload=None if payload is None else bytes(payload),
    )


@dataclass(frozen=True)
class BatchRecord:
    id: int
    route: str
    started_at: datetime
    finished_at: datetime | None
    status: str | None
    files: int
    owner: Owner = Owner.SERVICE
    reported_at: datetime | None = None  # the summary was handed to the mailer


@dataclass(frozen=True)
class TroubleRecord:
    """A failure episode of one step (`recovery`, `route:NAME`…): emailed once, and once when it clears."""

    key: str
    since: datetime
    attempts: int
    problem: str
    alerted_at: datetime | None


FILE_COLUMNS = tuple(f.name for f in dataclasses.fields(FileRecord))
UPDATABLE_COLUMNS = frozenset(FILE_COLUMNS) - {"id"}
DATETIME_COLUMNS = frozenset(
    {"arrived_at", "claimed_at", "submitted_at", "finished_at", "updated_at", "sent_at", "reported_at"}
)
INTEGER_COLUMNS = frozenset(
    {"batch_id", "size", "rows", "queued", "completed", "warnings", "errors", "owner_pid", "claimed_size"}
    | {"claimed_mtime_ns", "disabled_keys", "added_keys"}
)
BOOL_COLUMNS = frozenset({"long_run_alerted"})
REQUIRED_COLUMNS = frozenset({"route", "target", "name", "state", "updated_at", "long_run_alerted", "owner"})


def to_db_time(value: object) -> str:
    """ISO-8601 in UTC with a fixed width, so text order is time order (MAX, ORDER BY work)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("journal times must be timezone-aware (UTC); got a naive datetime")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def from_db_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(timezone.utc)


# Text columns that take one of a fixed set of values.
CHOICE_COLUMNS: dict[str, tuple[str, ...]] = {"state": FILE_STATES, "status": STATUS_VALUES, "owner": OWNERS}


def column_value(column: str, value: object) -> object:
    """Python value -> SQLite value for one files column, refusing what would corrupt the ledger."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        if column in REQUIRED_COLUMNS:
            raise ValueError(f"journal column {column!r} cannot be empty")
        return None
    if column in DATETIME_COLUMNS:
        return to_db_time(value)
    if column in BOOL_COLUMNS:
        return 1 if value else 0
    if column in INTEGER_COLUMNS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"journal column {column!r} takes an integer, got {type(value).__name__}")
        return value
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"journal column {column!r} takes text, got {type(value).__name__}")
    allowed = CHOICE_COLUMNS.get(column)
    if allowed is not None and value not in allowed:
        raise ValueError(f"unknown {column} {value!r}; expected one of {', '.join(allowed)}")
    return value


def file_record(row: sqlite3.Row) -> FileRecord:
    values: dict[str, Any] = {}
    for column in FILE_COLUMNS:
        raw = row[column]
        if column in DATETIME_COLUMNS:
            values[column] = from_db_time(raw)
        elif column in BOOL_COLUMNS:
            values[column] = bool(raw)
        elif column == "state":
            values[column] = FileState(raw)
        elif column == "owner":
            values[column] = Owner(raw)
        else:
            values[column] = raw
    return FileRecord(**values)


def batch_record(row: sqlite3.Row) -> BatchRecord:
    started_at = from_db_time(row["started_at"])
    assert started_at is not None  # NOT NULL column
    return BatchRecord(
        id=row["id"],
        route=row["route"],
        started_at=started_at,
        finished_at=from_db_time(row["finished_at"]),
        status=row["status"],
        files=row["files"],
        owner=Owner(row["owner"]),
        reported_at=from_db_time(row["reported_at"]),
    )


def trouble_record(row: sqlite3.Row) -> TroubleRecord:
    since = from_db_time(row["since"])
    assert since is not None  # NOT NULL column
    return TroubleRecord(
        key=row["key"],
        since=since,
        attempts=row["attempts"],
        problem=row["problem"],
        alerted_at=from_db_time(row["alerted_at"]),
    )
