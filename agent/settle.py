"""Where a decided file ends (archive/ or failed/), and the later move when its folder refused it.

Why: what happened to a file (delivered and what the destination said, or why it was not sent) is
worth more than its move. When archive/ or failed/ refuses the file (permissions, a full disk), the
outcome is journaled and reported all the same, the file waits in processing/ (state finished, its
report sent), and `watch` moves it later with back-off (`agent.troubles`): without asking the
destination again, never sending it twice. A file someone removed from processing/ is not looked
for for ever: the journal says it is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent import archive
from agent.clock import utcnow
from agent.errors import os_error_message
from agent.journal import Journal
from agent.journal_schema import FileRecord
from agent.records import Result, Status
from agent.settings import AgentSettings
from agent.wording import FILE_GONE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placed:
    """Where a decided file is now: moved (`path`), still in processing/ (`problem`), or gone."""

    path: Path | None
    problem: str = ""  # why it is still in processing/ (empty when it moved or is gone)
    error: OSError | None = None

    @property
    def gone(self) -> bool:
        return self.path is None


def place(path: Path, settings: AgentSettings, *, name: str, when: datetime, reason: str | None) -> Placed:
    """Move a decided file: to archive/ when it was delivered (`reason` None), else to failed/ with
    its reason file. Never raises for the move: a refusing folder or a vanished file is the answer."""
    try:
        if reason is None:
            return Placed(archive.archive(path, settings.archive_dir, name=name, when=when))
        return Placed(archive.fail(path, settings.failed_dir, name=name, reason=reason, when=when))
    except FileNotFoundError:
        log.warning("%s: %s", name, FILE_GONE)
        return Placed(None, FILE_GONE)
    except OSError as exc:
        problem = os_error_message(exc)
        folder = "archive/" if reason is None else "failed/"
        log.error("not moved: %s stays in processing/ (%s refused it: %s)", name, folder, problem)
        return Placed(path, problem, exc)


def journal_placed(
    journal: Journal, file_id: int, placed: Placed, *, status: Status, reason: str | None, at: datetime
) -> None:
    """One verb for where the decided file is now (a delivered file's outcome is already journaled)."""
    delivered = reason is None
    if placed.gone:
        journal.gone(file_id, delivered=delivered)
    elif placed.problem and not delivered:
        journal.decided_unsent(file_id, status, reason or "", at)
    elif placed.problem:
        return  # finished, with its status: the move waits
    elif delivered:
        journal.archived(file_id, placed.path or Path())
    else:
        journal.ended_unsent(file_id, status, reason or "", placed.path, at)


def stored_result(record: FileRecord) -> Result:
    """The outcome journaled before a crash or a refused move: the destination is not asked again."""
    status = Status(record.status) if record.status else Status.FAILED
    return Result(status=status, message=record.message or "", finished_at=record.finished_at or utcnow())


def destination(record: FileRecord) -> str:
    """`archive` for a delivered file (it has a receipt), `failed` for one that was not sent."""
    return "archive" if record.receipt else "failed"


def move_waiting(journal: Journal, settings: AgentSettings, records: list[FileRecord]) -> int:
    """Move decided, reported files still in processing/; returns how many moved.

    Raises the first refusal (an OSError) so the caller counts one failed attempt: the next files
    would be refused by the same folder."""
    moved = 0
    for record in records:
        when = record.finished_at or utcnow()
        reason = None if record.receipt else (record.message or "not sent")
        status = Status(record.status) if record.status else Status.FAILED
        placed = place(Path(record.current_path or ""), settings, name=record.name, when=when, reason=reason)
        journal_placed(journal, record.id, placed, status=status, reason=reason, at=when)
        if placed.error is not None:
            raise placed.error
        if not placed.gone:
            moved += 1
            log.info("moved: %s -> %s (it waited in processing/)", record.name, placed.path)
    return moved
