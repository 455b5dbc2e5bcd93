"""The ledger: one SQLite row per file handled and per batch, so a restart knows where each file is.

This is the only module that speaks SQL. The pipeline writes a file's state *before* and *after*
each step (claiming → claimed → submitting → submitted → finished → archived, or failed / rejected /
held), so after a crash the daemon can reconcile `processing/` with the journal: a file with a
receipt resumes polling and is never sent twice; a file without one is sent again.

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` and every write commits at
once (autocommit). In WAL mode a commit appends the transaction to the ``-wal`` file with an
ordinary ``write()``; once that call returns, the data lives in the operating system's page cache
and survives the process being killed (SIGKILL, OOM killer, a crash in a library): the next
process that opens the database replays the WAL. ``synchronous=NORMAL`` only skips the fsync on
each commit, so what it risks is the last few commits after a *power loss or kernel crash*, never
corruption (WAL keeps the database consistent). That is the right trade for a ledger written on
every poll; ``FULL`` would add an fsync per status reading. WAL also lets `feed-agent status` read
while the daemon writes.

Threads: the daemon loop, watcher callbacks and the mail thread share one connection
(``check_same_thread=False``) serialised by an RLock; SQLite's own busy timeout covers a second
process (the CLI) writing at the same moment.

Schema versions: ``PRAGMA user_version`` holds the number of migrations applied; ``MIGRATIONS`` is
the ordered list. A new column or table is a new entry at the end (never edit an old one), so any
older journal, including an empty file (version 0), is brought up to date on open.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.clock import utcnow
from agent.errors import JournalError
from agent.records import Receipt, Status

log = logging.getLogger(__name__)

FILE_STATES = ("claiming", "claimed", "submitting", "submitted", "finished", "archived", "failed", "rejected", "held")
IN_FLIGHT_STATES = FILE_STATES[:5]  # a restart must pick these up again
TERMINAL_STATES = FILE_STATES[5:]
STATUS_VALUES = tuple(status.value for status in Status)
ACCEPTED_STATUSES = (Status.SUCCESS.value, Status.WARNINGS.value, Status.ERRORS.value)
REFRESH_OPERATIONS = ("refresh", "refreshlegacy")
BUSY_TIMEOUT_SECONDS = 30.0  # another process (the CLI) holding the write lock

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
    state: str
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

    @property
    def in_flight(self) -> bool:
        """True while a restart would still have work to do for this file."""
        return self.state in IN_FLIGHT_STATES

    def receipt_object(self) -> Receipt | None:
        """The stored receipt, ready for Target.wait() after a restart."""
        return Receipt.from_json(self.receipt) if self.receipt else None


@dataclass(frozen=True)
class BatchRecord:
    id: int
    route: str
    started_at: datetime
    finished_at: datetime | None
    status: str | None
    files: int


FILE_COLUMNS = tuple(f.name for f in dataclasses.fields(FileRecord))
UPDATABLE_COLUMNS = frozenset(FILE_COLUMNS) - {"id"}
DATETIME_COLUMNS = frozenset({"arrived_at", "claimed_at", "submitted_at", "finished_at", "updated_at"})
INTEGER_COLUMNS = frozenset({"batch_id", "size", "rows", "queued", "completed", "warnings", "errors"})
BOOL_COLUMNS = frozenset({"long_run_alerted"})
REQUIRED_COLUMNS = frozenset({"route", "target", "name", "state", "updated_at", "long_run_alerted"})


def to_db_time(value: object) -> str:
    """ISO-8601 in UTC with a fixed width, so text order is time order (MAX, ORDER BY work)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("journal times must be timezone-aware (UTC); got a naive datetime")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def from_db_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(timezone.utc)


def _column_value(column: str, value: object) -> object:
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
    if column == "state" and value not in FILE_STATES:
        raise ValueError(f"unknown file state {value!r}; expected one of {', '.join(FILE_STATES)}")
    if column == "status" and value not in STATUS_VALUES:
        raise ValueError(f"unknown status {value!r}; expected one of {', '.join(STATUS_VALUES)}")
    return value


def _file_record(row: sqlite3.Row) -> FileRecord:
    values: dict[str, Any] = {}
    for column in FILE_COLUMNS:
        raw = row[column]
        if column in DATETIME_COLUMNS:
            values[column] = from_db_time(raw)
        elif column in BOOL_COLUMNS:
            values[column] = bool(raw)
        else:
            values[column] = raw
    return FileRecord(**values)


def _batch_record(row: sqlite3.Row) -> BatchRecord:
    started_at = from_db_time(row["started_at"])
    assert started_at is not None  # NOT NULL column
    return BatchRecord(
        id=row["id"],
        route=row["route"],
        started_at=started_at,
        finished_at=from_db_time(row["finished_at"]),
        status=row["status"],
        files=row["files"],
    )


def _quoted(column: str) -> str:
    """Column names come only from FILE_COLUMNS (checked by the caller); quoting covers `rows`."""
    return f'"{column}"'


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _unusable(path: Path, exc: sqlite3.Error) -> JournalError:
    """Turn SQLite's terse error into what an admin should do about it."""
    text = str(exc)
    if "locked" in text:
        advice = (
            f"it stayed locked by another process for {BUSY_TIMEOUT_SECONDS:g} seconds. Check for a "
            "stuck feed-agent process, then try again."
        )
    elif isinstance(exc, sqlite3.OperationalError):
        advice = "check that work_dir exists and is writable by the agent's user."
    else:
        advice = (
            "if the file is damaged, move it aside and start the agent again: it creates a new "
            "journal (files still in processing/ are then sent again)."
        )
    return JournalError(f"The journal {path} cannot be used ({text}): {advice}")


class Journal:
    """The SQLite ledger. Safe to share between threads; each write is committed when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._listed_mail_failure_id: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._configure()
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise _unusable(self.path, exc) from exc
        except BaseException:
            self._conn.close()
            raise

    # -- life cycle ---------------------------------------------------------------------------

    def _configure(self) -> None:
        mode = str(self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        if mode == "wal":
            self._conn.execute("PRAGMA synchronous=NORMAL")
        else:
            # Outside WAL, NORMAL could corrupt the file on power loss; FULL is the safe setting.
            log.warning(
                "journal %s: WAL mode unavailable on this filesystem (mode %s); writes are "
                "still safe but slower, and `status` may wait for the daemon",
                self.path,
                mode,
            )
            self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    def _migrate(self) -> None:
        """Apply the migrations this file has not seen, all in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # two processes starting at once: one migrates
            try:
                version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise JournalError(
                        f"The journal {self.path} was written by a newer feed-agent (schema {version}; "
                        f"this version knows {SCHEMA_VERSION}). Upgrade feed-agent, or point work_dir "
                        "at another folder."
                    )
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        self._conn.execute(statement)
                if version != SCHEMA_VERSION:
                    # PRAGMA takes no parameters; SCHEMA_VERSION is our own integer constant.
                    self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                    log.info("journal %s: schema %d -> %d", self.path, version, SCHEMA_VERSION)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _execute(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def _fetchall(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _fetchone(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    # -- batches ------------------------------------------------------------------------------

    def start_batch(self, route: str) -> int:
        cursor = self._execute("INSERT INTO batches (route, started_at) VALUES (?, ?)", (route, to_db_time(utcnow())))
        return int(cursor.lastrowid or 0)

    def finish_batch(self, batch_id: int, status: str, files: int) -> None:
        value = status.value if isinstance(status, enum.Enum) else status
        cursor = self._execute(
            "UPDATE batches SET finished_at = ?, status = ?, files = ? WHERE id = ?",
            (to_db_time(utcnow()), value, files, batch_id),
        )
        if cursor.rowcount == 0:
            raise KeyError(f"no batch with id {batch_id} in the journal")

    def recent_batches(self, limit: int = 10) -> list[BatchRecord]:
        rows = self._fetchall("SELECT * FROM batches ORDER BY id DESC LIMIT ?", (limit,))
        return [_batch_record(row) for row in rows]

    # -- files --------------------------------------------------------------------------------

    def add_file(
        self,
        *,
        route: str,
        target: str,
        name: str,
        source_path: Path,
        batch_id: int | None = None,
        size: int | None = None,
        arrived_at: datetime | None = None,
    ) -> int:
        """Record a file *before* it is claimed (state "claiming"), so a crash mid-claim is visible."""
        values = {
            "batch_id": batch_id,
            "route": route,
            "target": target,
            "name": name,
            "source_path": source_path,
            "current_path": source_path,
            "size": size,
            "state": "claiming",
            "arrived_at": arrived_at,
            "updated_at": utcnow(),
            "long_run_alerted": False,
        }
        columns = list(values)
        params = [_column_value(column, values[column]) for column in columns]
        sql = f"INSERT INTO files ({', '.join(_quoted(c) for c in columns)}) VALUES ({_placeholders(len(columns))})"
        return int(self._execute(sql, params).lastrowid or 0)

    def update_file(self, file_id: int, **fields: object) -> None:
        """Set any FileRecord column except id; updated_at is set to now unless given.

        A Receipt object is accepted for `receipt` (stored as JSON; `reference` filled from it).
        Unknown names raise ValueError: SQL is built only from the fixed column list.
        """
        unknown = sorted(set(fields) - UPDATABLE_COLUMNS)
        if unknown:
            raise ValueError(f"not journal file columns: {', '.join(unknown)}")
        receipt = fields.get("receipt")
        if isinstance(receipt, Receipt):
            fields["receipt"] = receipt.to_json()
            fields.setdefault("reference", receipt.reference)
        fields.setdefault("updated_at", utcnow())
        columns = [column for column in FILE_COLUMNS if column in fields]
        params = [_column_value(column, fields[column]) for column in columns]
        assignments = ", ".join(f"{_quoted(column)} = ?" for column in columns)
        cursor = self._execute(f"UPDATE files SET {assignments} WHERE id = ?", [*params, file_id])
        if cursor.rowcount == 0:
            raise KeyError(f"no file with id {file_id} in the journal")

    def file(self, file_id: int) -> FileRecord:
        row = self._fetchone("SELECT * FROM files WHERE id = ?", (file_id,))
        if row is None:
            raise KeyError(f"no file with id {file_id} in the journal")
        return _file_record(row)

    def in_flight(self, route: str | None = None) -> list[FileRecord]:
        """Files a restart must pick up (claiming..finished), oldest first."""
        sql = f"SELECT * FROM files WHERE state IN ({_placeholders(len(IN_FLIGHT_STATES))})"
        params: list[object] = list(IN_FLIGHT_STATES)
        if route is not None:
            sql += " AND route = ?"
            params.append(route)
        return [_file_record(row) for row in self._fetchall(sql + " ORDER BY id", params)]

    def recent_files(self, limit: int = 20) -> list[FileRecord]:
        """For `status`: files still in flight first, then the newest finished ones."""
        sql = (
            f"SELECT * FROM files ORDER BY "
            f"CASE WHEN state IN ({_placeholders(len(IN_FLIGHT_STATES))}) THEN 0 ELSE 1 END, "
            f"id DESC LIMIT ?"
        )
        return [_file_record(row) for row in self._fetchall(sql, [*IN_FLIGHT_STATES, limit])]

    def last_accepted_refresh_rows(self, target: str, object: str) -> int | None:
        """Rows of the newest refresh the destination accepted, for the shrinking-refresh guard.

        A refresh that FAILED, was rejected or held never replaced the destination's data, so it
        is not a baseline; files with another target or object are a different data set.
        """
        sql = (
            f'SELECT "rows" FROM files WHERE target = ? AND object = ? '
            f"AND operation IN ({_placeholders(len(REFRESH_OPERATIONS))}) "
            f'AND status IN ({_placeholders(len(ACCEPTED_STATUSES))}) AND "rows" IS NOT NULL '
            f"ORDER BY COALESCE(finished_at, submitted_at, updated_at) DESC, id DESC LIMIT 1"
        )
        row = self._fetchone(sql, [target, object, *REFRESH_OPERATIONS, *ACCEPTED_STATUSES])
        return None if row is None else int(row[0])

    def last_arrival(self, route: str) -> datetime | None:
        """When a file last arrived on the route (for the MISSING alert)."""
        row = self._fetchone("SELECT MAX(COALESCE(arrived_at, claimed_at)) FROM files WHERE route = ?", (route,))
        return None if row is None else from_db_time(row[0])

    # -- mail failures ------------------------------------------------------------------------

    def record_mail_failure(self, subject: str, error: str) -> None:
        """Remember an email that could not be sent, to mention it in the next one that can."""
        self._execute(
            "INSERT INTO mail_failures (subject, error, recorded_at) VALUES (?, ?, ?)",
            (subject, error, to_db_time(utcnow())),
        )

    def unreported_mail_failures(self) -> list[str]:
        """'subject: error' lines, oldest first; remembers which ones were listed (see mark_...)."""
        with self._lock:
            rows = self._fetchall("SELECT id, subject, error FROM mail_failures WHERE reported_at IS NULL ORDER BY id")
            self._listed_mail_failure_id = rows[-1]["id"] if rows else 0
        return [f"{row['subject']}: {row['error']}" for row in rows]

    def mark_mail_failures_reported(self) -> None:
        """Mark as reported those the last unreported_mail_failures() call listed.

        A failure recorded by another thread after that listing was not in the email, so it stays
        unreported; with no listing since the last mark, every unreported failure is marked.
        """
        with self._lock:
            sql = "UPDATE mail_failures SET reported_at = ? WHERE reported_at IS NULL"
            params: list[object] = [to_db_time(utcnow())]
            if self._listed_mail_failure_id is not None:
                sql += " AND id <= ?"
                params.append(self._listed_mail_failure_id)
            self._execute(sql, params)
            self._listed_mail_failure_id = None

    # -- meta ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
