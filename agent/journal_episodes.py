"""The journal's verbs for failures that last: failure episodes (`agent.troubles`: one `troubles` row
per kind of failure while it lasts, never one per attempt), a claim the drop folder refused (no rows
left behind) and decided files a folder refused (`agent.unmoved`).

Apart from `agent.journal` only for room (a module stays under 500 lines): `Journal` inherits these
verbs, so callers still speak to one journal, and SQL still lives only in the journal's modules.
"""

from __future__ import annotations

from datetime import datetime

from agent.journal_base import JournalBase
from agent.journal_schema import FileRecord, FileState, TroubleRecord, file_record, to_db_time, trouble_record


class EpisodeJournal(JournalBase):
    """The `troubles` table: when an episode started, how many attempts failed, whether it was emailed."""

    def trouble_failed(self, key: str, problem: str, at: datetime) -> TroubleRecord:
        """One more failed attempt of the step `key`; the first opens the episode (`since`)."""
        with self._lock:
            self._execute(
                "INSERT INTO troubles (key, since, attempts, problem) VALUES (?, ?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET attempts = attempts + 1, problem = excluded.problem",
                (key, to_db_time(at), problem),
            )
            row = self._fetchone("SELECT * FROM troubles WHERE key = ?", (key,))
        assert row is not None  # just written
        return trouble_record(row)

    def trouble_alerted(self, key: str, at: datetime) -> bool:
        """Claim the episode's one email; False when it was already sent (by this or an earlier process)."""
        sql = "UPDATE troubles SET alerted_at = ? WHERE key = ? AND alerted_at IS NULL"
        return self._execute(sql, (to_db_time(at), key)).rowcount == 1

    def trouble_cleared(self, key: str) -> TroubleRecord | None:
        """The step works again: the episode ends (returned, None if there was none)."""
        with self._lock:
            row = self._fetchone("SELECT * FROM troubles WHERE key = ?", (key,))
            if row is not None:
                self._execute("DELETE FROM troubles WHERE key = ?", (key,))
        return None if row is None else trouble_record(row)

    def troubles(self) -> list[TroubleRecord]:
        """Open episodes, oldest first (for the daemon at start, and `status`)."""
        return [trouble_record(row) for row in self._fetchall("SELECT * FROM troubles ORDER BY since, key")]

    def unplanned(self, batch_id: int) -> None:
        """A planned batch whose drop folder refused every claim: it goes, with its files (none moved),
        so each retry of a folder that stays unwritable leaves no row behind."""
        with self._lock:
            self._execute("DELETE FROM files WHERE batch_id = ? AND claimed_at IS NULL", (batch_id,))
            self._execute(
                "DELETE FROM batches WHERE id = ? AND NOT EXISTS (SELECT 1 FROM files WHERE batch_id = ?)",
                (batch_id, batch_id),
            )

    def unmoved(self) -> list[FileRecord]:
        """Decided and reported files still waiting in processing/ for their move (oldest first)."""
        sql = "SELECT * FROM files WHERE state = ? AND reported_at IS NOT NULL ORDER BY id"
        return [file_record(row) for row in self._fetchall(sql, (FileState.FINISHED.value,))]
