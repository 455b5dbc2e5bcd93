"""Recovery after a crash or stop: a receipt is followed (never re-sent), a claim without one is sent again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.records import Receipt, Status
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
