"""Learn's record log of a delivered file: fetched after its end into archive/, never blocking the batch."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.batchitem import BatchItem
from agent.journal import Journal
from agent.recordlogs import fetch_record_log
from agent.records import FileOutcome, Receipt, Status
from agent.simulator import LearnSimulator
from agent.targets.learn import LearnTarget
from tests.simulator.client import feed, upload_and_finish
from tests.support.learn import MEMBERSHIP_HEADER
from tests.support.recordlog import configure


def _delivered(journal: Journal, archived: Path, status: Status, reference: str) -> BatchItem:
    file_id = journal.add_file(route="sis", target="learn", name="enrol.txt", source_path=archived)
    outcome = FileOutcome(
        name="enrol.txt",
        route="sis",
        target="learn",
        target_type="learn",
        status=status,
        receipt=Receipt(target="learn", kind="learn", reference=reference),
        final_path=archived,
        finished_at=journal.file(file_id).updated_at,
        file_id=file_id,
    )
    return BatchItem(record=journal.file(file_id), path=archived, outcome=outcome)


def test_the_log_of_a_file_with_errors_is_saved_beside_it_and_journaled(
    tmp_path: Path, rest_sim: LearnSimulator
) -> None:
    config = configure(tmp_path, rest_sim)
    uid = upload_and_finish(rest_sim, "membership", feed(MEMBERSHIP_HEADER, [("C404", "P404", "SIS", "Student")]))
    archive_dir = config.agent.archive_dir
    archive_dir.mkdir(parents=True)
    archived = archive_dir / "enrol.20261206T200000Z.txt"
    archived.write_text("rows\n", encoding="utf-8")
    lines: list[str] = []
    with Journal(config.agent.journal_path) as journal:
        item = _delivered(journal, archived, Status.ERRORS, uid)
        fetch_record_log(
            journal, archive_dir, LearnTarget(config.targets["learn"]), item, threading.Event(), lines.append
        )
        saved = journal.record_log_path(item.file_id)
    record = item.outcome.record_log
    assert record is not None and record.complete and record.counts.get("Error", 0) >= 1
    assert saved == archive_dir / "enrol.20261206T200000Z.log.csv" and saved.is_file()
    assert lines and lines[0].startswith("    record log: ")


def test_a_file_without_record_problems_fetches_nothing(tmp_path: Path, rest_sim: LearnSimulator) -> None:
    config = configure(tmp_path, rest_sim)
    with Journal(config.agent.journal_path) as journal:
        item = _delivered(journal, tmp_path / "users.txt", Status.SUCCESS, "0" * 32)
        fetch_record_log(journal, tmp_path, LearnTarget(config.targets["learn"]), item, threading.Event(), print)
        assert item.outcome.record_log is None and journal.record_log_path(item.file_id) is None
    assert rest_sim.rest_requests == 0
