"""A decided file whose folder refuses it: journaled and reported once, moved later, never polled again."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import unmoved
from agent.journal_schema import FileState
from agent.records import Status
from agent.recovery import recover
from agent.simulator import LearnSimulator
from tests.support.faults import ReadOnlyFolder
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile
from tests.support.pipeline import claim_all, fast_pipeline


def test_a_refused_archive_leaves_the_outcome_reported_once_and_moves_later_without_polling(
    pipeline_env, learn_sim: LearnSimulator, refuse_writes: Callable[[Path], ReadOnlyFolder]
) -> None:
    config, journal, reporter = pipeline_env
    people = write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(4))
    pipeline = fast_pipeline(config, journal, reporter)
    (file_id,) = claim_all(pipeline, config, [people])
    archive_fault = refuse_writes(config.agent.archive_dir)

    batch = pipeline.process(config.route(), [file_id])

    (outcome,) = batch.files
    assert outcome.status is Status.SUCCESS and outcome.receipt is not None  # delivered, whatever the folder
    assert outcome.final_path is not None and outcome.final_path.parent == config.agent.processing_dir
    assert "not permitted" in outcome.not_moved or "denied" in outcome.not_moved
    assert [f.name for f in reporter.files] == ["users.txt"]  # the report went out, saying so
    record = journal.file(file_id)
    assert record.state is FileState.FINISHED and record.status == "SUCCESS" and record.reported_at is not None

    polls = learn_sim.status_requests
    waiting = unmoved.waiting(journal)
    assert [r.id for r in waiting[unmoved.ARCHIVE]] == [file_id] and waiting[unmoved.FAILED] == []
    with pytest.raises(OSError) as refused:
        unmoved.move_waiting(journal, config.agent, waiting[unmoved.ARCHIVE])
    assert refused.value.errno in (errno.EPERM, errno.EACCES)
    assert recover(fast_pipeline(config, journal, reporter), journal, {r.name: r for r in config.routes}) == []

    archive_fault.off()
    assert unmoved.move_waiting(journal, config.agent, unmoved.waiting(journal)[unmoved.ARCHIVE]) == 1

    record = journal.file(file_id)
    assert record.state is FileState.ARCHIVED and Path(record.current_path or "").parent == config.agent.archive_dir
    assert not any(config.agent.processing_dir.iterdir())
    assert learn_sim.status_requests == polls  # Learn was not asked again
    assert len(learn_sim.uploads_snapshot()) == 1 and len(reporter.files) == 1  # nor sent or reported twice
    assert unmoved.waiting(journal) == {unmoved.ARCHIVE: [], unmoved.FAILED: []}


def test_a_refused_failed_folder_keeps_the_rejection_and_its_reason(
    pipeline_env, learn_sim: LearnSimulator, refuse_writes: Callable[[Path], ReadOnlyFolder]
) -> None:
    config, journal, reporter = pipeline_env
    bad = config.route().watch / "mystery.txt"
    bad.write_text("NOT|A|HEADER\n1|2|3\n", encoding="utf-8")
    pipeline = fast_pipeline(config, journal, reporter)
    (file_id,) = claim_all(pipeline, config, [bad])
    failed_fault = refuse_writes(config.agent.failed_dir)

    (outcome,) = pipeline.process(config.route(), [file_id]).files

    assert outcome.status is Status.REJECTED and outcome.not_moved
    assert journal.file(file_id).state is FileState.FINISHED
    assert [r.id for r in unmoved.waiting(journal)[unmoved.FAILED]] == [file_id]
    failed_fault.off()
    unmoved.move_waiting(journal, config.agent, unmoved.waiting(journal)[unmoved.FAILED])
    record = journal.file(file_id)
    assert record.state is FileState.REJECTED
    moved = Path(record.current_path or "")
    assert moved.parent == config.agent.failed_dir
    assert (moved.parent / f"{moved.name}.reason.txt").exists()
    assert learn_sim.uploads_snapshot() == [] and len(reporter.files) == 1
