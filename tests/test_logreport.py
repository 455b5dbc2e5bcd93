"""Learn's record log in the per-file email, end to end: simulator over HTTP → pipeline → rendered email."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import sqlite3
from pathlib import Path

from agent.mailer import build_message
from agent.records import Status
from agent.render import Renderer
from tests.support.recordlog import REST_SECRET, configure, deliver_memberships


def attachment_rows(message_bytes: bytes, filename: str) -> list[dict[str, str]]:
    data = message_bytes if not filename.endswith(".gz") else gzip.decompress(message_bytes)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_the_errors_email_names_every_rejected_record_and_why(tmp_path, rest_sim, caplog):
    caplog.set_level(logging.DEBUG)
    config = configure(tmp_path, rest_sim)

    outcome = deliver_memberships(tmp_path, rest_sim, config, total=25, unknown=12)
    rendered = Renderer().file_report(outcome)

    assert outcome.status is Status.ERRORS
    for i in range(1, 13):
        assert f"GHOST{i:05d}" in rendered.text and f"GHOST{i:05d}" in rendered.html
    assert rendered.text.count("names a person that does not exist") >= 12
    assert "12 errors" in rendered.text
    (attachment,) = rendered.attachments
    assert attachment.filename == "enrol.log.csv"
    rows = attachment_rows(attachment.data, attachment.filename)
    assert [row["level"] for row in rows] == ["Error"] * 12
    saved = list((config.agent.archive_dir).glob("enrol.*.log.csv"))
    assert len(saved) == 1 and saved[0].read_bytes() == attachment.data
    with sqlite3.connect(config.agent.journal_path) as db:
        errors, warnings, path, complete = db.execute(
            "SELECT errors, warnings, path, complete FROM record_logs"
        ).fetchone()
    assert (errors, warnings, Path(path), complete) == (12, 0, saved[0], 1)
    message = bytes(build_message(rendered, config.email))
    everything = [message, saved[0].read_bytes(), config.agent.journal_path.read_bytes(), caplog.text.encode()]
    assert not any(REST_SECRET.encode() in blob for blob in everything)


def test_250_errors_keep_the_body_short_while_the_attachment_has_them_all(tmp_path, rest_sim):
    config = configure(tmp_path, rest_sim)

    outcome = deliver_memberships(tmp_path, rest_sim, config, total=260, unknown=250)
    rendered = Renderer().file_report(outcome)

    assert outcome.record_log is not None and len(outcome.record_log.groups) == 1
    assert "250 × Error" in rendered.text
    assert "The first 50 of 250 entries" in rendered.text
    assert "GHOST00051" not in rendered.text
    (attachment,) = rendered.attachments
    assert len(attachment_rows(attachment.data, attachment.filename)) == 250
    assert len(rendered.text) < 20_000


def test_a_log_too_big_for_the_email_cap_is_cut_and_the_full_file_named(tmp_path, rest_sim):
    config = configure(tmp_path, rest_sim)
    outcome = deliver_memberships(tmp_path, rest_sim, config, total=3000, unknown=3000)

    rendered = Renderer(max_message_mb=0.1).file_report(outcome)

    (attachment,) = rendered.attachments
    assert attachment.filename == "enrol.log.csv.gz"
    rows = attachment_rows(attachment.data, attachment.filename)
    assert 0 < len(rows) < 3000
    assert len(bytes(build_message(rendered, config.email))) < 0.1 * 1024 * 1024
    assert outcome.record_log is not None and str(outcome.record_log.csv_path) in rendered.text
    assert "too big for one email" in rendered.text


def test_without_rest_keys_the_email_says_how_to_get_record_details(tmp_path, rest_sim):
    config = configure(tmp_path, rest_sim, rest=False)

    outcome = deliver_memberships(tmp_path, rest_sim, config, total=25, unknown=12)
    rendered = Renderer().file_report(outcome)

    assert outcome.record_log is None and not rendered.attachments
    assert "rest_key and rest_secret" in rendered.text
    assert "Record details in reports" in rendered.text
    assert not list(config.agent.archive_dir.glob("*.log.csv"))


def test_a_forbidden_log_never_blocks_the_file_and_the_email_says_why(tmp_path, rest_sim):
    config = configure(tmp_path, rest_sim)
    rest_sim.faults.rest_forbidden = True

    outcome = deliver_memberships(tmp_path, rest_sim, config, total=25, unknown=12)
    rendered = Renderer().file_report(outcome)

    assert outcome.status is Status.ERRORS
    assert outcome.final_path is not None and outcome.final_path.parent == config.agent.archive_dir
    assert "system.dataintegrations.log.VIEW" in rendered.text
    assert "errors " + outcome.receipt.reference in rendered.text  # how to fetch it later
