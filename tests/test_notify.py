"""The EmailReporter end to end: outbox files, switches, mail failures remembered, heartbeat, no secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from agent.journal import Journal
from agent.mailer import Mailer
from agent.notify import EmailReporter
from agent.records import Status
from agent.render import RenderedEmail
from agent.settings import Secret
from tests.support.net import free_port, serving
from tests.support.outcomes import DROP, SMTP_PASSWORD, SMTP_USER, START, batch, body, config, outcome, parse
from tests.support.smtp import SmtpServer, TlsCert


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as opened:
        yield opened


def test_reporter_writes_eml_files_and_logs_each_report(
    tmp_path: Path, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = EmailReporter(config(tmp_path), journal)
    with caplog.at_level(logging.INFO, logger="agent.notify"):
        reporter.file_done(outcome(Status.ERRORS))
        reporter.batch_done(batch(outcome(Status.ERRORS)))
        reporter.still_processing(outcome(Status.SUCCESS, finished_at=None), 31)
        reporter.missing("sis", DROP, 26, None)

    assert len(reporter.sent) == 4 and len(reporter.last_paths) == 4
    subjects = [parse(p)["Subject"] for p in reporter.last_paths]
    assert subjects == [r.subject for r in reporter.sent]
    assert all(p.parent == tmp_path / "var" / "outbox" for p in reporter.last_paths)
    for subject in subjects:
        assert f"report sent: {subject}" in caplog.text


def test_per_file_and_summary_switches(tmp_path: Path) -> None:
    reporter = EmailReporter(config(tmp_path, per_file="no", summary=False))
    reporter.file_done(outcome())
    reporter.batch_done(batch(outcome()))
    assert not reporter.sent and not reporter.last_paths
    reporter.missing("sis", DROP, 26, None)  # alerts are not per-file reports: still sent
    assert len(reporter.last_paths) == 1


def test_with_email_off_nothing_is_rendered_or_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reporter = EmailReporter(config(tmp_path, transport="none"))
    with caplog.at_level(logging.INFO, logger="agent.notify"):
        reporter.file_done(outcome(Status.ERRORS))
        reporter.batch_done(batch(outcome(Status.ERRORS)))
    assert not reporter.sent and not reporter.last_paths  # no template ran, no message was built
    assert not (tmp_path / "var" / "outbox").exists()
    assert "report not sent (email is off, transport = none): report for courses.txt" in caplog.text
    assert "summary for route" in caplog.text


def blocked_outbox(tmp_path: Path) -> None:
    """A file where the outbox folder should be: no report can be written (even as root)."""
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "var" / "outbox").write_text("not a folder", encoding="utf-8")


@pytest.mark.parametrize("transport", ["file", "smtp"])
def test_a_report_that_cannot_be_written_is_journaled_and_listed_in_the_next_summary(
    tmp_path: Path, journal: Journal, caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    blocked_outbox(tmp_path)
    failing = EmailReporter(config(tmp_path, transport=transport, host="127.0.0.1", security="none"), journal)
    with caplog.at_level(logging.INFO, logger="agent.notify"):
        failing.file_done(outcome(Status.ERRORS))  # must not raise
    assert "report not sent: [feed-agent] ERRORS courses.txt" in caplog.text
    [problem] = journal.unreported_mail_failures()
    assert problem.startswith("[feed-agent] ERRORS courses.txt — course/store: cannot write")

    (tmp_path / "var" / "outbox").unlink()
    working = EmailReporter(config(tmp_path), journal)  # the disk is fixed (file outbox here)
    run = batch(outcome(Status.SUCCESS))
    working.batch_done(run)
    assert run.mail_problems == [problem]
    summary = parse(working.last_paths[-1])
    assert "cannot write" in body(summary, "plain") and "cannot write" in body(summary, "html")
    assert journal.unreported_mail_failures() == []  # reported once, not in every summary

    second = batch(outcome(Status.SUCCESS))
    working.batch_done(second)
    assert second.mail_problems == []


def test_without_a_journal_failures_are_kept_in_memory(tmp_path: Path) -> None:
    blocked_outbox(tmp_path)
    reporter = EmailReporter(config(tmp_path))
    reporter.file_done(outcome())
    run = batch(outcome())
    reporter.batch_done(run)  # the summary fails too: both stay listed for the next one
    assert len(run.mail_problems) == 1 and "courses.txt" in run.mail_problems[0]
    again = batch(outcome())
    reporter.batch_done(again)
    assert any("Summary" in p for p in again.mail_problems)


def test_with_smtp_down_reports_wait_in_the_spool_instead_of_failing(tmp_path: Path, journal: Journal) -> None:
    refused = config(tmp_path, transport="smtp", host="127.0.0.1", port=free_port(), security="none")
    reporter = EmailReporter(refused, journal)
    reporter.file_done(outcome(Status.ERRORS))
    reporter.batch_done(batch(outcome(Status.ERRORS)))
    assert journal.unreported_mail_failures() == []  # nothing lost, so nothing to confess
    assert len(list((tmp_path / "var" / "outbox" / "unsent").glob("*.eml"))) == 2


@pytest.mark.parametrize(("per_file", "reported"), [("yes", 3), ("no", 0), ("problems", 2)])
def test_per_file_problems_sends_only_files_that_need_attention(tmp_path: Path, per_file: str, reported: int) -> None:
    reporter = EmailReporter(config(tmp_path, per_file=per_file))
    files = [outcome(Status.SUCCESS, "a.txt"), outcome(Status.WARNINGS, "b.txt"), outcome(Status.HELD, "c.txt")]
    for file in files:
        reporter.file_done(file)
    reporter.batch_done(batch(*files))
    subjects = [str(parse(p)["Subject"]) for p in reporter.last_paths]
    assert len(subjects) == reported + 1 and subjects[-1].startswith("[feed-agent] Summary: 3 files")
    if per_file == "problems":
        assert [s.split()[1:3] for s in subjects[:2]] == [["WARNINGS", "b.txt"], ["HELD", "c.txt"]]
    summary = body(parse(reporter.last_paths[-1]), "plain")
    assert all(name in summary for name in ("a.txt", "b.txt", "c.txt"))  # the summary still lists all


def test_reporter_never_raises(tmp_path: Path) -> None:
    class Exploding(Mailer):
        def send(self, rendered: RenderedEmail) -> Path | None:
            raise RuntimeError("disk on fire")

    settings = config(tmp_path)
    reporter = EmailReporter(settings, mailer=Exploding(settings.email, tmp_path))
    reporter.file_done(outcome())
    reporter.still_processing(outcome(), 40)
    reporter.missing("sis", DROP, 2, None)
    run = batch(outcome())
    reporter.batch_done(run)
    assert len(run.mail_problems) == 3 and all("unexpected error" in p for p in run.mail_problems)


@pytest.fixture
def ping_server() -> Iterator[tuple[str, list[str]]]:
    """A monitoring endpoint that records the path of every heartbeat GET."""
    paths: list[str] = []

    class Pings(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Pings) as base:
        yield f"{base}/ping/abc", paths


def test_batch_done_pings_the_heartbeat(tmp_path: Path, ping_server: tuple[str, list[str]]) -> None:
    url, paths = ping_server
    reporter = EmailReporter(config(tmp_path, heartbeat=url))
    reporter.batch_done(batch(outcome(Status.SUCCESS)))
    reporter.batch_done(batch(outcome(Status.SUCCESS), outcome(Status.FAILED, "b.txt")))
    assert paths == ["/ping/abc", "/ping/abc/fail"]


# -- secrets ------------------------------------------------------------------------------------------------


def test_no_message_ever_contains_an_smtp_secret(
    smtp_server: Callable[..., SmtpServer],
    tls_cert: TlsCert,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = smtp_server(tls="starttls", users={SMTP_USER: SMTP_PASSWORD}, auth_required=True)
    settings = config(
        tmp_path,
        transport="smtp",
        host=server.host,
        port=server.port,
        security="starttls",
        verify_tls=str(tls_cert.cert),
        username=Secret(SMTP_USER),
        password=Secret(SMTP_PASSWORD),
    )
    reporter = EmailReporter(settings)
    with caplog.at_level(logging.DEBUG):
        for status in Status:
            reporter.file_done(outcome(status, f"{status.name.lower()}.txt"))
        reporter.still_processing(outcome(), 35)
        reporter.missing("sis", DROP, 26, START)
        reporter.batch_done(batch(*(outcome(s, f"{s.name}.txt") for s in Status)))
        reporter.mailer.check(send_test=True)

    assert len(server.messages) == len(Status) + 4 and server.logins  # every report went through AUTH
    secrets = settings.secrets()
    assert sorted(secrets) == sorted([SMTP_USER, SMTP_PASSWORD])
    for raw in server.messages:
        message = message_from_bytes(raw, policy=policy.default)
        decoded = "".join(str(part.get_content()) for part in message.walk() if not part.is_multipart())
        for secret in secrets:
            assert secret.encode() not in raw
            assert secret not in decoded
    for secret in secrets:
        assert secret not in caplog.text


def test_a_spooled_report_is_journaled_as_taken_before_the_spool_is_sent(tmp_path: Path, journal: Journal) -> None:
    """A crash between the spool and the journal: the next start marks it from the spool, never writes it again."""
    dead = config(tmp_path, transport="smtp", host="127.0.0.1", port=free_port(), security="none")
    file_id = journal.add_file(route="sis", target="learn", name="courses.txt", source_path=tmp_path / "c.txt")
    batch_id = journal.start_batch("sis")
    report = outcome(Status.ERRORS, report_key=f"file-{file_id}")
    summary = batch(report)
    summary.report_key = f"batch-{batch_id}"
    EmailReporter(dead).file_done(report)  # no journal: as if the process died before marking it
    EmailReporter(dead).batch_done(summary)
    assert journal.file(file_id).reported_at is None and journal.batch(batch_id).reported_at is None

    EmailReporter(dead, journal).deliver_waiting(force=True)  # the next start

    assert journal.file(file_id).reported_at is not None and journal.batch(batch_id).reported_at is not None


def test_the_reporter_marks_a_report_taken_right_after_the_spool_holds_it(tmp_path: Path) -> None:
    dead = config(tmp_path, transport="smtp", host="127.0.0.1", port=free_port(), security="none")
    marks: list[str] = []
    EmailReporter(dead).file_done(outcome(Status.ERRORS, reported=lambda: marks.append("taken")))
    assert marks == ["taken"] and len(list((tmp_path / "var" / "outbox" / "unsent").glob("*.eml"))) == 1
    EmailReporter(config(tmp_path, per_file="problems")).file_done(outcome(Status.SUCCESS, reported=marks.clear))
    assert marks == ["taken"]  # no report due: the reporter leaves the mark to the pipeline


def test_the_reports_kept_in_memory_are_bounded_by_size_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reporter = EmailReporter(config(tmp_path, transport="file"))  # with email off nothing is rendered
    reporter.file_done(outcome(Status.SUCCESS, name="first.txt"))
    one = reporter.sent[0].size
    monkeypatch.setattr("agent.notify.RECENT_BYTES", 3 * one + one // 2)
    for number in range(10):
        reporter.file_done(outcome(Status.SUCCESS, name=f"file{number}.txt"))
    assert [r.subject.split()[2] for r in reporter.sent] == ["file7.txt", "file8.txt", "file9.txt"]
