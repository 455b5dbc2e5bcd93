"""The ledger: one SQLite row per file handled and per batch, so a restart knows where each file is.

This is the only module (with its connection in `agent.journal_base`) that speaks SQL. The pipeline
writes a file's state *before* and *after* each step (claiming → claimed → submitting → submitted →
finished → archived, or failed / rejected / held), so after a crash the daemon can reconcile
`processing/` with the journal: a file with a receipt resumes polling and is never sent twice; a
file without one is sent again.

Connection, migrations and durability are in `agent.journal_base`; the schema, its migrations and
the row records in `agent.journal_schema`; the verbs of queued jobs in `agent.journal_jobs`.
Callers change a file's state only through the verbs below (one per step of a file's life); none
of them names a column.
"""

from __future__ import annotations

import enum
import logging
import os
from datetime import datetime
from pathlib import Path

from agent.clock import utcnow
from agent.journal_episodes import EpisodeJournal
from agent.journal_jobs import JobJournal
from agent.journal_schema import (
    ACCEPTED_STATUSES,
    DELIVERED_AT,
    FILE_COLUMNS,
    IN_FLIGHT_STATES,
    UNSENT_STATES,
    UPDATABLE_COLUMNS,
    BatchRecord,
    FileRecord,
    FileState,
    Owner,
    batch_record,
    column_value,
    file_record,
    from_db_time,
    to_db_time,
)
from agent.records import Progress, Receipt, RecordLog, Result, Status

log = logging.getLogger(__name__)


def _quoted(column: str) -> str:
    """Column names come only from FILE_COLUMNS (checked by the caller); quoting covers `rows`."""
    return f'"{column}"'


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


class Journal(JobJournal, EpisodeJournal):
    """The SQLite ledger. Safe to share between threads; each write is committed when it returns."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._listed_mail_failure_id: int | None = None

    def __enter__(self) -> Journal:
        return self

    # -- batches ------------------------------------------------------------------------------

    def start_batch(self, route: str, owner: Owner = Owner.SERVICE) -> int:
        cursor = self._execute(
            "INSERT INTO batches (route, started_at, owner) VALUES (?, ?, ?)",
            (route, to_db_time(utcnow()), owner.value),
        )
        return int(cursor.lastrowid or 0)

    def finish_batch(self, batch_id: int, status: str, files: int) -> None:
        value = status.value if isinstance(status, enum.Enum) else status
        cursor = self._execute(
            "UPDATE batches SET finished_at = ?, status = ?, files = ? WHERE id = ?",
            (to_db_time(utcnow()), value, files, batch_id),
        )
        if cursor.rowcount == 0:
            raise KeyError(f"no batch with id {batch_id} in the journal")

    def batch(self, batch_id: int) -> BatchRecord:
        row = self._fetchone("SELECT * FROM batches WHERE id = ?", (batch_id,))
        if row is None:
            raise KeyError(f"no batch with id {batch_id} in the journal")
        return batch_record(row)

    def batch_reported(self, batch_id: int) -> None:
        """The batch summary was handed to the mailer (or needs none): a restart never sends it again."""
        self._execute(
            "UPDATE batches SET reported_at = ? WHERE id = ? AND reported_at IS NULL", (to_db_time(utcnow()), batch_id)
        )

    def unreported_batches(self) -> list[BatchRecord]:
        """The service's batches a restart must still finish or summarize, oldest first."""
        sql = "SELECT * FROM batches WHERE reported_at IS NULL AND owner = ? ORDER BY id"
        return [batch_record(row) for row in self._fetchall(sql, (Owner.SERVICE.value,))]

    def batch_files(self, batch_id: int) -> list[FileRecord]:
        """Every file journaled in the batch (whatever its state), in the order they were planned."""
        rows = self._fetchall("SELECT * FROM files WHERE batch_id = ? ORDER BY id", (batch_id,))
        return [file_record(row) for row in rows]

    def recent_batches(self, limit: int = 10) -> list[BatchRecord]:
        rows = self._fetchall("SELECT * FROM batches ORDER BY id DESC LIMIT ?", (limit,))
        return [batch_record(row) for row in rows]

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
        owner: Owner = Owner.SERVICE,
    ) -> int:
        """Record a file *before* it is claimed (state "claiming"), so a crash mid-claim is visible.

        `owner` and this process's pid say who took it: a restart of the service adopts only its own
        files, never one a manual `post` owns (issue 14.2: that was posted twice)."""
        values = {
            "batch_id": batch_id,
            "route": route,
            "target": target,
            "name": name,
            "source_path": source_path,
            "current_path": source_path,
            "size": size,
            "state": FileState.CLAIMING,
            "arrived_at": arrived_at,
            "updated_at": utcnow(),
            "long_run_alerted": False,
            "owner": owner,
            "owner_pid": os.getpid(),
        }
        columns = list(values)
        params = [column_value(column, values[column]) for column in columns]
        sql = f"INSERT INTO files ({', '.join(_quoted(c) for c in columns)}) VALUES ({_placeholders(len(columns))})"
        return int(self._execute(sql, params).lastrowid or 0)

    def claimed(
        self,
        file_id: int,
        path: Path,
        at: datetime | None = None,
        *,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """The file is in processing/ (or, for a manual post, adopted where it is), with the size and
        mtime it had then (`agent.writecheck` compares them before and after sending)."""
        self._update(
            file_id,
            state=FileState.CLAIMED,
            current_path=path,
            claimed_at=at or utcnow(),
            claimed_size=size,
            claimed_mtime_ns=mtime_ns,
        )

    def claim_resettled(self, file_id: int, *, size: int, mtime_ns: int) -> None:
        """The claimed file had changed (its writer had paused) and is still again: this is what is sent."""
        self._update(file_id, size=size, claimed_size=size, claimed_mtime_ns=mtime_ns)

    def abandoned(self, file_id: int, reason: str) -> None:
        """Nothing more can be done for this file (it vanished, its route is gone); why, for `status`."""
        self._update(file_id, state=FileState.FAILED, message=reason)

    def joined_batch(self, file_id: int, batch_id: int) -> None:
        self._update(file_id, batch_id=batch_id)

    def inspected(
        self, file_id: int, *, rows: int, size: int, object: str | None, operation: str | None, sha256: str | None
    ) -> None:
        """What the pre-flight check found (the state stays claimed)."""
        self._update(file_id, rows=rows, size=size, object=object, operation=operation, sha256=sha256)

    def submitting(self, file_id: int) -> None:
        """The upload starts: a crash from here on may have reached the destination."""
        self._update(file_id, state=FileState.SUBMITTING)

    def sent(self, file_id: int, at: datetime | None = None, sha256: str | None = None) -> None:
        """The body's last byte is going out: from here on the destination may have the file, so a
        crash or a lost answer makes it UNCONFIRMED, never a second upload. `sha256`: the digest of
        what was sent, when the upload computed it (Learn)."""
        digest = {"sha256": sha256} if sha256 is not None else {}
        with self.durably():  # a power loss must not undo it: recovery would send the file again
            self._update(file_id, state=FileState.SENT, sent_at=at or utcnow(), **digest)

    def upload_abandoned(self, file_id: int, reason: str) -> bool:
        """A stop cut the upload short before its last byte went out: nothing reached the destination,
        so the file may be claimed and sent again. A file already SENT (or further) is left as it is;
        False then."""
        cursor = self._execute(
            "UPDATE files SET state = ?, message = ?, updated_at = ? WHERE id = ? AND state = ?",
            (FileState.CLAIMED.value, reason, to_db_time(utcnow()), file_id, FileState.SUBMITTING.value),
        )
        return cursor.rowcount == 1

    def withdrawn(self, file_id: int, path: Path, reason: str) -> None:
        """A manual post was stopped before its file was sent: nothing reached the destination, the
        post's row ends here (no status: it was neither delivered nor refused) and says where the file is."""
        self._update(file_id, state=FileState.FAILED, current_path=path, message=reason, finished_at=utcnow())

    def resumed_by(self, file_id: int, owner_pid: int) -> None:
        """A `post` takes over the file of an earlier `post` that died (only a post resumes a post)."""
        self._update(file_id, owner_pid=owner_pid)

    def submitted(self, file_id: int, receipt: Receipt) -> None:
        """The destination accepted the file: from now on it is followed, never sent again."""
        self._update(
            file_id,
            state=FileState.SUBMITTED,
            receipt=receipt.to_json(),
            reference=receipt.reference,
            submitted_at=receipt.submitted_at,
        )

    def polled(self, file_id: int, progress: Progress) -> None:
        """One status reading (the counts so far)."""
        self._update(file_id, **_counts(progress))

    def long_run_alerted(self, file_id: int) -> None:
        """The STILL PROCESSING alert went out (it goes once per file)."""
        self._update(file_id, long_run_alerted=True)

    def finished(self, file_id: int, result: Result) -> None:
        """The destination's final word; the file is not yet archived."""
        self._update(
            file_id,
            state=FileState.FINISHED,
            status=result.status,
            finished_at=result.finished_at,
            message=result.message or None,
            **_counts(result.progress),
        )

    def decided_unsent(
        self, file_id: int, status: Status, reason: str, at: datetime, held_by: str | None = None
    ) -> None:
        """A file that did not reach its destination: its end is decided before it moves to failed/,
        so a restart finishes the move instead of deciding again (`held_by`: the file it waited for)."""
        self._update(file_id, state=FileState.FINISHED, status=status, message=reason, finished_at=at, held_by=held_by)

    def archived(self, file_id: int, path: Path | None) -> None:
        """Delivered and moved to archive/ (or left in place by a manual post)."""
        self._update(file_id, state=FileState.ARCHIVED, current_path=path)

    def ended_unsent(self, file_id: int, status: Status, reason: str, path: Path | None, at: datetime) -> None:
        """Not delivered: rejected, held or failed, with why and where the file is now."""
        self._update(
            file_id,
            state=UNSENT_STATES.get(status, FileState.FAILED),
            status=status,
            message=reason,
            finished_at=at,
            current_path=path,
        )

    def file_reported(self, file_id: int) -> None:
        """The per-file report was handed to the mailer (or needs none): a restart never sends it again."""
        self._execute(
            "UPDATE files SET reported_at = ? WHERE id = ? AND reported_at IS NULL", (to_db_time(utcnow()), file_id)
        )

    def _update(self, file_id: int, **fields: object) -> None:
        """Set FileRecord columns (validated and converted); updated_at is set to now unless given.

        Private on purpose: callers use the verbs above, so no caller ever names a column, and SQL
        is built only from the fixed column list.
        """
        unknown = sorted(set(fields) - UPDATABLE_COLUMNS)
        if unknown:
            raise ValueError(f"not journal file columns: {', '.join(unknown)}")
        fields.setdefault("updated_at", utcnow())
        columns = [column for column in FILE_COLUMNS if column in fields]
        params = [column_value(column, fields[column]) for column in columns]
        assignments = ", ".join(f"{_quoted(column)} = ?" for column in columns)
        cursor = self._execute(f"UPDATE files SET {assignments} WHERE id = ?", [*params, file_id])
        if cursor.rowcount == 0:
            raise KeyError(f"no file with id {file_id} in the journal")

    def planned_batch(self, file_ids: list[int]) -> int | None:
        """The one batch all these files were planned in, or None (several, or a file in none).

        One query per 500 files (old SQLite allows 999 parameters), not a whole record per file."""
        batches: set[int | None] = set()
        for start in range(0, len(file_ids), 500):
            chunk: list[object] = [*file_ids[start : start + 500]]
            sql = f"SELECT DISTINCT batch_id FROM files WHERE id IN ({_placeholders(len(chunk))})"
            batches.update(row[0] for row in self._fetchall(sql, chunk))
        only = batches.pop() if len(batches) == 1 else None
        return None if only is None else int(only)

    def file(self, file_id: int) -> FileRecord:
        row = self._fetchone("SELECT * FROM files WHERE id = ?", (file_id,))
        if row is None:
            raise KeyError(f"no file with id {file_id} in the journal")
        return file_record(row)

    def in_flight(self, route: str | None = None, *, owners: tuple[Owner, ...] = tuple(Owner)) -> list[FileRecord]:
        """Files still under way (claiming..finished), oldest first; only those `owners` took, if given
        (the service's recovery asks for its own: a manual post's file is the post's to resume)."""
        sql = (
            f"SELECT * FROM files WHERE state IN ({_placeholders(len(IN_FLIGHT_STATES))}) "
            f"AND owner IN ({_placeholders(len(owners))})"
        )
        params: list[object] = [*(state.value for state in IN_FLIGHT_STATES), *(owner.value for owner in owners)]
        if route is not None:
            sql += " AND route = ?"
            params.append(route)
        return [file_record(row) for row in self._fetchall(sql + " ORDER BY id", params)]

    def manual_in_flight(self, path: Path) -> FileRecord | None:
        """The unfinished manual post of `path` (where the file is now, or where the admin had it)."""
        text = str(path)
        sql = (
            f"SELECT * FROM files WHERE state IN ({_placeholders(len(IN_FLIGHT_STATES))}) "
            "AND owner != ? AND (current_path = ? OR source_path = ?) ORDER BY id DESC LIMIT 1"
        )
        row = self._fetchone(sql, [*(s.value for s in IN_FLIGHT_STATES), Owner.SERVICE.value, text, text])
        return None if row is None else file_record(row)

    def recent_files(self, limit: int = 20) -> list[FileRecord]:
        """For `status`: files still in flight first, then the newest finished ones."""
        sql = (
            f"SELECT * FROM files ORDER BY "
            f"CASE WHEN state IN ({_placeholders(len(IN_FLIGHT_STATES))}) THEN 0 ELSE 1 END, "
            f"id DESC LIMIT ?"
        )
        return [file_record(row) for row in self._fetchall(sql, [*(s.value for s in IN_FLIGHT_STATES), limit])]

    def keys_compared(
        self, file_id: int, *, data_source_keys: str | None, disabled: int | None, added: int | None
    ) -> None:
        """What the refresh guard found: the file's data source keys and the keys it disables and adds."""
        self._update(file_id, data_source_keys=data_source_keys, disabled_keys=disabled, added_keys=added)

    def last_delivery(
        self,
        target: str,
        slug: str,
        operation: str,
        data_source_keys: str | None = None,
        *,
        before: int | None = None,
    ) -> FileRecord | None:
        """The newest delivery of one feed the destination accepted: the refresh guard's baseline.

        A feed is a target, object and operation; for a `refreshlegacy` also the data source keys the
        file covered (Learn disables only within them, so one key's file is never compared with
        another's). A file that FAILED, was rejected or held never replaced the destination's data.
        """
        sql = (
            f"SELECT * FROM files WHERE target = ? AND object = ? AND operation = ? "
            f"AND status IN ({_placeholders(len(ACCEPTED_STATUSES))})"
        )
        params: list[object] = [target, slug, operation, *ACCEPTED_STATUSES]
        if operation == "refreshlegacy":
            sql += " AND COALESCE(data_source_keys, '') = ?"
            params.append(data_source_keys or "")
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        row = self._fetchone(sql + f" ORDER BY {DELIVERED_AT} DESC, id DESC LIMIT 1", params)
        return None if row is None else file_record(row)

    def deliveries(
        self,
        *,
        route: str | None = None,
        slug: str | None = None,
        target: str | None = None,
        operation: str | None = None,
        since: datetime | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[FileRecord]:
        """Accepted deliveries, newest first: the feed history (`history`, the summary chart)."""
        sql, params = _deliveries_query("*", route, slug, target, operation, since, before, limit)
        return [file_record(row) for row in self._fetchall(sql, params)]

    def delivered_rows(self, *, target: str, slug: str, operation: str, before: int, limit: int) -> list[int]:
        """The row counts of a feed's last `limit` deliveries before file `before`, newest first: all
        the store notice needs, asked before every store (a whole record per row cost more than the
        query)."""
        sql, params = _deliveries_query("rows", None, slug, target, operation, None, before, limit)
        return [int(row[0]) for row in self._fetchall(sql, params) if row[0] is not None]

    def last_arrival(self, route: str) -> datetime | None:
        """When a file last arrived on the route (for the MISSING alert)."""
        row = self._fetchone("SELECT MAX(COALESCE(arrived_at, claimed_at)) FROM files WHERE route = ?", (route,))
        return None if row is None else from_db_time(row[0])

    def record_log_saved(self, file_id: int, record: RecordLog) -> None:
        """Learn's record log of a file was read (wholly or in part): counts per level and the CSV."""
        errors, warnings = record.counts.get("Error", 0), record.counts.get("Warning", 0)
        path, other = str(record.csv_path) if record.csv_path else None, record.total - errors - warnings
        sql = "INSERT OR REPLACE INTO record_logs VALUES (?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        self._execute(sql, (file_id, errors, warnings, other, path, int(record.complete), record.problem))

    def record_log_path(self, file_id: int) -> Path | None:
        row = self._fetchone("SELECT path FROM record_logs WHERE file_id = ? AND complete = 1", (file_id,))
        return Path(row[0]) if row is not None and row[0] else None

    def delivered(self, key: str) -> FileRecord | None:
        sql = "SELECT * FROM files WHERE (reference IN (?, ?) OR name = ?) AND reference IS NOT NULL ORDER BY id DESC"
        row = self._fetchone(sql, (key, key.lower(), key))
        return None if row is None else file_record(row)

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


def _counts(progress: Progress | None) -> dict[str, int]:
    if progress is None:
        return {}
    return {
        "queued": progress.queued,
        "completed": progress.completed,
        "warnings": progress.warnings,
        "errors": progress.errors,
    }


def _deliveries_query(
    columns: str,
    route: str | None,
    slug: str | None,
    target: str | None,
    operation: str | None,
    since: datetime | None,
    before: int | None,
    limit: int | None,
) -> tuple[str, list[object]]:
    """The feed history's one query (accepted files, newest first), for `deliveries` and `delivered_rows`."""
    sql = f"SELECT {columns} FROM files WHERE status IN ({_placeholders(len(ACCEPTED_STATUSES))})"
    params: list[object] = [*ACCEPTED_STATUSES]
    for column, value in (("route", route), ("object", slug), ("target", target), ("operation", operation)):
        if value is not None:
            sql += f" AND {column} = ?"  # column names from the fixed tuple above
            params.append(value)
    if since is not None:
        sql += " AND finished_at >= ?"
        params.append(to_db_time(since))
    if before is not None:
        sql += " AND id < ?"
        params.append(before)
    sql += f" ORDER BY {DELIVERED_AT} DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params
