"""Recovery after a crash or stop: a receipt is followed (never re-sent), a claim without one is sent again."""

from __future__ import annotations

from pathlib import Path

from agent.records import Receipt, Status
from agent.recovery import recover
from agent.simulator import LearnSimulator
from agent.targets.learn import LearnTarget
from tests.support.learn import (
    PEOPLE_HEADER,
    person_rows,
    write_flatfile,
)
from tests.support.pipeline import claim_all, fast_pipeline


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
