"""Decided files whose folder refused them (archive/ or failed/: permissions, a full disk): moved later.

Why apart from recovery: such a file is done in every other way (its end journaled, its report
sent, its batch summarized), so retrying it must not re-run a batch, poll the destination again or
send a report twice. `watch` calls `move_waiting` with back-off (`agent.troubles`, one episode per
folder: `archive`, `failed`) until the folder takes the files; `agent.filing` does each move (and
finds a file an interrupted run already moved).
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.batchitem import BatchItem, decided
from agent.filing import file_away
from agent.journal import Journal
from agent.journal_schema import FileRecord
from agent.records import FileOutcome, Receipt, Status
from agent.settings import AgentSettings

log = logging.getLogger(__name__)

ARCHIVE, FAILED = "archive", "failed"  # the episode keys, named after the folder that refuses


def destination(record: FileRecord) -> str:
    """Where a decided file goes: archive/ when it was delivered (it has a receipt), else failed/."""
    return ARCHIVE if record.receipt else FAILED


def folder_of(key: str, settings: AgentSettings) -> Path:
    return settings.archive_dir if key == ARCHIVE else settings.failed_dir


def waiting(journal: Journal) -> dict[str, list[FileRecord]]:
    """The decided, reported files still in processing/, by the folder they wait for."""
    groups: dict[str, list[FileRecord]] = {ARCHIVE: [], FAILED: []}
    for record in journal.unmoved():
        groups[destination(record)].append(record)
    return groups


def move_waiting(journal: Journal, settings: AgentSettings, records: list[FileRecord]) -> int:
    """Move each file to its folder and journal it; returns how many moved.

    Raises the first refusal (the OSError) so the caller counts one failed attempt: the next files
    would be refused by the same folder."""
    for record in records:
        item = _item(record)
        file_away(journal, settings, item, delivered=record.receipt is not None, keep=False)
        if item.move_error is not None:
            raise item.move_error
        log.info("moved: %s -> %s (it waited in processing/)", record.name, item.outcome.final_path)
    return len(records)


def _item(record: FileRecord) -> BatchItem:
    outcome = FileOutcome(
        name=record.name,
        route=record.route,
        target=record.target,
        target_type="",
        status=Status.SUCCESS,
        size=record.size or 0,
        sha256=record.sha256,
        file_id=record.id,
        receipt=Receipt.from_json(record.receipt) if record.receipt else None,
    )
    decided(outcome, record)
    return BatchItem(record=record, path=Path(record.current_path or ""), outcome=outcome, receipt=outcome.receipt)
