"""The journal's verbs for jobs that end later (AlumnIQ, notified by a webhook): the `jobs` table.

A part of the journal (`agent.journal.Journal` inherits them), apart only to keep each module small:
the same connection (`agent.journal_base`), the same rule that no caller names a column.
"""

from __future__ import annotations

from datetime import datetime

from agent.journal_base import JournalBase
from agent.journal_schema import JOB_SELECT, OPEN_JOB_STATES, JobRecord, JobState, job_record, to_db_time


class JobJournal(JournalBase):
    """A queued job's own life: sending → awaiting → succeeded | failed (`JobState`)."""

    def job_expected(self, file_id: int, token_digest: str) -> None:
        """A notification URL is about to be sent with the job call (a re-send replaces the old one)."""
        self._execute(
            "INSERT INTO jobs (file_id, token_digest, state) VALUES (?, ?, ?) ON CONFLICT(file_id) DO UPDATE SET "
            "token_digest = excluded.token_digest, state = excluded.state, job_id = NULL, queued_at = NULL, "
            "notify_by = NULL, alerted_at = NULL, notified_at = NULL, message = NULL, payload = NULL",
            (file_id, token_digest, JobState.SENDING.value),
        )

    def job_queued(self, file_id: int, job_id: str, queued_at: datetime, notify_by: datetime) -> None:
        """The job API queued it; from now on the dead-man's switch watches `notify_by` (once per job)."""
        self._execute(
            "UPDATE jobs SET job_id = ?, queued_at = ?, notify_by = ?, "
            "state = CASE WHEN state = ? THEN ? ELSE state END WHERE file_id = ? AND job_id IS NULL",
            (
                job_id,
                to_db_time(queued_at),
                to_db_time(notify_by),
                JobState.SENDING.value,
                JobState.AWAITING.value,
                file_id,
            ),
        )

    def job_settled(
        self, token_digest: str, *, succeeded: bool, message: str, payload: bytes, at: datetime
    ) -> JobRecord | None:
        """The notification for an open job: it ends, once; None for an unknown or already settled URL."""
        state = JobState.SUCCEEDED if succeeded else JobState.FAILED
        with self._lock:
            cursor = self._execute(
                "UPDATE jobs SET state = ?, message = ?, payload = ?, notified_at = ? "
                f"WHERE token_digest = ? AND state IN ({', '.join('?' * len(OPEN_JOB_STATES))})",
                (state.value, message, payload, to_db_time(at), token_digest, *OPEN_JOB_STATES),
            )
            if cursor.rowcount == 0:
                return None
            row = self._fetchone(f"{JOB_SELECT} WHERE jobs.token_digest = ?", (token_digest,))
        return None if row is None else job_record(row)

    def jobs_overdue(self, now: datetime) -> list[JobRecord]:
        """Queued jobs past their deadline with no notification and no NOT NOTIFIED alert yet."""
        sql = f"{JOB_SELECT} WHERE jobs.state = ? AND jobs.notify_by <= ? AND jobs.alerted_at IS NULL ORDER BY jobs.id"
        return [job_record(row) for row in self._fetchall(sql, (JobState.AWAITING.value, to_db_time(now)))]

    def job_alerted(self, job_row_id: int, at: datetime) -> bool:
        """Claim the NOT NOTIFIED alert for a job; False when another process already sent it."""
        cursor = self._execute(
            "UPDATE jobs SET alerted_at = ? WHERE id = ? AND alerted_at IS NULL", (to_db_time(at), job_row_id)
        )
        return cursor.rowcount == 1

    def jobs(self, *, awaiting_only: bool = False, limit: int = 50) -> list[JobRecord]:
        """For `status` and tests: the newest jobs first (only those still awaiting, if asked)."""
        where = f" WHERE jobs.state = '{JobState.AWAITING.value}'" if awaiting_only else ""
        return [job_record(r) for r in self._fetchall(f"{JOB_SELECT}{where} ORDER BY jobs.id DESC LIMIT ?", (limit,))]
