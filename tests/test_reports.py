"""Report models, rendered: every fact in both parts, escaping, the summary, alerts."""

from __future__ import annotations

import dataclasses

from agent.records import Status
from agent.render import Renderer
from tests.support.outcomes import DROP, START, batch, outcome


def test_per_file_report_carries_every_fact_in_both_parts() -> None:
    rendered = Renderer().file_report(outcome(Status.ERRORS))
    facts = [
        "courses.txt",
        "10.2 KB",
        "120",
        "course",
        "store",
        "learn",
        "REF-8f3c2a61",
        "2026-11-22 07:00:05 UTC",
        "2026-11-22 07:02:10 UTC",
        "2 min 05 s",
        "/srv/sis/var/archive/stamped_courses.txt",
        "10 record(s) were not processed",
        "Completed",
        "Warnings",
        "Errors",
        "Queued",
        "ERRORS",
    ]
    for part in (rendered.text, rendered.html):
        for fact in facts:
            assert fact in part, fact
    assert "→" in rendered.html and "SIS Integrations" in rendered.html


def test_html_has_a_coloured_badge_and_stays_narrow() -> None:
    html = Renderer().file_report(outcome(Status.SUCCESS)).html
    assert "#1a7f37" in html  # SUCCESS green
    assert 'width="600"' in html and "max-width:600px" in html
    assert Renderer().file_report(outcome(Status.HELD)).html.count("#5b7083") >= 1  # grey-blue


def test_file_names_are_escaped_in_html_and_raw_in_text() -> None:
    nasty = outcome(Status.REJECTED, "x<script>.txt", object=None, message="header <b>bold</b> & broken")
    renderer = Renderer()
    for rendered in (renderer.file_report(nasty), renderer.summary(batch(nasty))):
        assert "<script>" not in rendered.html and "<b>bold</b>" not in rendered.html
        assert "x&lt;script&gt;.txt" in rendered.html
        assert "x<script>.txt" in rendered.text


def test_summary_lists_rows_totals_held_files_and_mail_problems() -> None:
    files = [
        outcome(Status.SUCCESS, "terms.txt", object="term"),
        outcome(Status.ERRORS, "courses.txt"),
        outcome(Status.HELD, "enrol.txt", held_by="courses.txt", message=""),
    ]
    run = batch(*files)
    run.mail_problems = ["[feed-agent] SUCCESS terms.txt — term/store: connection refused"]
    rendered = Renderer().summary(run)
    for part in (rendered.text, rendered.html):
        assert "terms.txt" in part and "enrol.txt" in part
        assert "REF-8f3c2a61" in part
        assert "230" in part and "360" in part  # completed and rows totals
        assert "6 min 41 s" in part  # batch duration
        assert "waits for courses.txt" in part  # held file and why
        assert "connection refused" in part  # the earlier email that was not sent
        assert "ERRORS" in part  # the overall (worst) status
    assert "Held files" in rendered.text and "Earlier emails that could not be sent" in rendered.text


def test_alert_bodies_say_what_it_means_and_what_to_do() -> None:
    renderer = Renderer()
    missing = renderer.missing("sis", DROP, 26, START)
    assert f"check that the SIS export job ran and writes into {DROP}".lower() in missing.text.lower()
    assert "2026-11-22 07:00:05 UTC" in missing.html
    running = renderer.still_processing(outcome(Status.SUCCESS, finished_at=None), 45)
    assert "45 min 00 s" in running.text and "REF-8f3c2a61" in running.html
    assert "do not send the file again" in running.text


def test_the_still_processing_alert_says_about_how_long_is_left_when_the_pace_is_known() -> None:
    running = outcome(Status.SUCCESS, finished_at=None)
    assert running.progress is not None
    running.progress = dataclasses.replace(running.progress, eta_seconds=12 * 60 + 10)
    alert = Renderer().still_processing(running, 45)
    assert "about 12 min left at the pace so far" in " ".join(alert.text.split()) and "about 12 min" in alert.html
    running.progress = dataclasses.replace(running.progress, eta_seconds=None)
    assert "left" not in Renderer().still_processing(running, 45).text
