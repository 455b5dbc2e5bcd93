"""Recovery after a crash or stop: a receipt is followed (never re-sent), a claim without one is sent again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import BatchIncomplete
from agent.journal_schema import FileState
from agent.records import FileOutcome, Receipt, Status
from agent.recovery import recover
from agent.simulator import LearnSimulator
from agent.targets.learn import LearnTarget
from tests.support.agentconf import write_config
from tests.support.cli import run
from tests.support.learn import (
    PEOPLE_HEADER,
    person_rows,
    write_flatfile,
)
from tests.support.pipeline import claim_all, drop_standard_files, fast_pipeline
from tests.support.recording import RecordingReporter


def test_recovery_resumes_a_receipt_without_resending(pipeline_env, learn_sim: LearnSimulator) -> None:
    config, journal, reporter = pipeline_env
    people = write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(5))
    target = LearnTarget(config.targets["learn"])
    pipeline = fast_pipeline(config, journal, reporter)
    (file_id,) = claim_all(pipeline, config, [people])
    record = journal.file(file_id)
    # As if the agent died right after Learn acknowledged the upload:
    from agent.records import Submission

    receipt = target.submit(
        Submission(path=Path(record.current_path or ""), name="users.txt", object="person", operation="store", rows=5)
    )
    journal.inspected(file_id, rows=5, size=record.size or 0, object="person", operation="store", sha256=None)
    journal.submitted(file_id, receipt)

    batches = recover(fast_pipeline(config, journal, reporter), journal, {r.name: r for r in config.routes})

    assert len(learn_sim.uploads_snapshot()) == 1  # never sent twice
    outcome = batches[0].files[0]
    assert outcome.status is Status.SUCCESS and outcome.receipt is not None
    assert outcome.receipt.reference == receipt.reference
    assert journal.file(file_id).state == "archived"
    assert Receipt.from_json(journal.file(file_id).receipt or "").reference == receipt.reference


def test_recovery_resends_a_claimed_file_without_receipt(pipeline_env, learn_sim: LearnSimulator) -> None:
    config, journal, reporter = pipeline_env
    people = write_flatfile(config.route().watch / "users.txt", PEOPLE_HEADER, person_rows(5))
    pipeline = fast_pipeline(config, journal, reporter)
    (file_id,) = claim_all(pipeline, config, [people])
    journal.submitting(file_id)  # died during the upload, before any receipt

    recover(fast_pipeline(config, journal, reporter), journal, {r.name: r for r in config.routes})

    assert len(learn_sim.uploads_snapshot()) == 1
    assert journal.file(file_id).state == "archived"
    assert journal.in_flight() == []


def test_a_batch_cut_between_its_claims_is_sent_whole_and_in_order(pipeline_env, learn_sim: LearnSimulator) -> None:
    config, journal, reporter = pipeline_env
    drop = config.route().watch
    files = drop_standard_files(drop)
    batch_id = journal.start_batch("sis")
    ids = {
        kind: journal.add_file(route="sis", target="learn", name=path.name, source_path=path, batch_id=batch_id)
        for kind, path in files.items()
    }
    config.agent.processing_dir.mkdir(parents=True, exist_ok=True)
    os.rename(files["memberships"], config.agent.processing_dir / "enrol.txt")  # died right after this rename

    [batch] = recover(fast_pipeline(config, journal, reporter), journal, {r.name: r for r in config.routes})

    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course", "membership"]
    assert batch.batch_id == batch_id and [f.status for f in batch.files] == [Status.SUCCESS] * 3
    assert all(journal.file(i).state is FileState.ARCHIVED for i in ids.values())
    assert len(reporter.files) == 3 and len(reporter.batches) == 1
    assert not list(config.agent.processing_dir.iterdir()) and not list(drop.iterdir())
    assert journal.unreported_batches() == []


def test_a_file_sent_whole_before_a_crash_is_unconfirmed_and_holds_its_dependents(
    pipeline_env, learn_sim: LearnSimulator
) -> None:
    config, journal, reporter = pipeline_env
    files = drop_standard_files(config.route().watch)
    pipeline = fast_pipeline(config, journal, reporter)
    people, courses, memberships = claim_all(
        pipeline, config, [files["people"], files["courses"], files["memberships"]]
    )
    journal.inspected(people, rows=6, size=1, object="person", operation="store", sha256=None)
    journal.submitting(people)
    journal.sent(people)  # the last byte went out; the answer was never read

    recover(fast_pipeline(config, journal, reporter), journal, {r.name: r for r in config.routes})

    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["course"]  # never sent again
    statuses = {o.name: o.status for o in reporter.files}
    assert statuses == {"users.txt": Status.UNCONFIRMED, "courses.txt": Status.SUCCESS, "enrol.txt": Status.HELD}
    assert journal.file(people).state is FileState.UNCONFIRMED
    assert Path(journal.file(people).current_path or "").parent == config.agent.failed_dir
    assert "may have accepted it" in journal.file(people).message  # type: ignore[operator]
    assert journal.file(memberships).state is FileState.HELD and journal.file(courses).state is FileState.ARCHIVED
    assert journal.file(memberships).held_by == "users.txt"


class FailsOnce(RecordingReporter):
    """The first report cannot be handed over (the process would crash there): nothing is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def file_done(self, outcome: FileOutcome) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("the disk is full")
        super().file_done(outcome)


def test_a_filed_away_file_gets_only_its_missing_report_and_the_batch_one_summary(
    pipeline_env, learn_sim: LearnSimulator
) -> None:
    config, journal, _ = pipeline_env
    files = drop_standard_files(config.route().watch)
    failing = FailsOnce()
    pipeline = fast_pipeline(config, journal, failing)
    ids = claim_all(pipeline, config, [files["people"], files["courses"]])
    with pytest.raises(BatchIncomplete, match=r"users\.txt"):  # isolated: courses.txt went on meanwhile
        pipeline.process(config.route(), ids)
    assert journal.file(ids[0]).state is FileState.ARCHIVED and journal.file(ids[0]).reported_at is None
    assert journal.file(ids[1]).reported_at is not None and failing.batches == []  # no summary yet

    recover(fast_pipeline(config, journal, failing), journal, {r.name: r for r in config.routes})

    assert [u.slug for u in learn_sim.uploads_snapshot()] == ["person", "course"]
    assert [o.name for o in failing.files] == ["courses.txt", "users.txt"]
    [summary] = failing.batches
    assert [f.name for f in summary.files] == ["users.txt", "courses.txt"]
    assert all(journal.file(i).reported_at is not None for i in ids)
    recover(fast_pipeline(config, journal, failing), journal, {r.name: r for r in config.routes})
    assert len(failing.files) == 2 and len(failing.batches) == 1  # a second restart sends nothing


@pytest.mark.parametrize("point", ["batch-planned", "claim-journaled", "report-journaled"])
def test_after_a_crash_and_a_restart_status_shows_no_batch_running_forever(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str], point: str
) -> None:
    """Issue 13.12: `run` killed (SIGKILL) mid-batch, `run` again: every batch is closed, none 'running'."""
    ini = write_config(tmp_path, learn_sim.url)
    write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEED_AGENT")}
    command = [sys.executable, "-m", "agent", "-c", str(ini), "run"]
    crashed = subprocess.run(command, env={**env, "FEED_AGENT_FAILPOINT": point}, capture_output=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert subprocess.run(command, env=env, capture_output=True, timeout=120).returncode == 0

    status, out, _ = run(capsys, "-c", ini, "status")

    batches = out.split("Batches:", 1)[1].split("\n\n", 1)[0]
    assert status == 0 and "running" not in batches, out
    assert "SUCCESS" in batches
    assert len(learn_sim.uploads_snapshot()) == 1


def test_files_that_vanished_from_processing_are_reported_once_and_recovery_goes_on(
    pipeline_env, learn_sim: LearnSimulator
) -> None:
    from agent.records import Submission

    config, journal, reporter = pipeline_env
    files = drop_standard_files(config.route().watch)
    pipeline = fast_pipeline(config, journal, reporter)
    people, courses = claim_all(pipeline, config, [files["people"], files["courses"]])
    record = journal.file(people)
    receipt = LearnTarget(config.targets["learn"]).submit(
        Submission(path=Path(record.current_path or ""), name="users.txt", object="person", operation="store", rows=6)
    )
    journal.inspected(people, rows=6, size=record.size or 0, object="person", operation="store", sha256=None)
    journal.submitted(people, receipt)
    for file_id in (people, courses):  # someone removed both from processing/ while the agent was down
        Path(journal.file(file_id).current_path or "").unlink()

    (batch,) = recover(fast_pipeline(config, journal, reporter), journal, {r.name: r for r in config.routes})

    outcomes = {o.name: o for o in reporter.files}
    assert sorted(outcomes) == ["courses.txt", "users.txt"]  # one report each, nothing raised
    assert outcomes["users.txt"].status is Status.SUCCESS  # delivered before: followed, its end reported
    assert outcomes["courses.txt"].status is Status.REJECTED and outcomes["courses.txt"].final_path is None
    assert len(learn_sim.uploads_snapshot()) == 1  # only the upload made before the restart
    assert journal.in_flight() == [] and len(reporter.batches) == 1 and len(batch.files) == 2
    assert recover(fast_pipeline(config, journal, reporter), journal, {r.name: r for r in config.routes}) == []
    assert len(reporter.files) == 2
