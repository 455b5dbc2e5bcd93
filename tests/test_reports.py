"""Reports: subjects, next steps, rendering (escaping, overrides) and the EmailReporter end to end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from agent.journal import Journal
from agent.mailer import Mailer
from agent.notify import EmailReporter
from agent.profiles import LEARN_LOGS
from agent.records import BatchOutcome, FileOutcome, Progress, Receipt, Status
from agent.render import TEMPLATE_NAMES, RenderedEmail, Renderer, shipped_templates_dir
from agent.retry import RetryPolicy
from agent.settings import AgentSettings, Config, EmailSettings, HeartbeatSettings, Secret
from agent.wording import format_duration, format_size, format_time, next_step
from tests.support.net import free_port, serving
from tests.support.smtp import SmtpServer, TlsCert

START = datetime(2026, 11, 22, 7, 0, 5, tzinfo=timezone.utc)
DROP = Path("/srv/sis/drop")
SMTP_USER = "reports-smtp-login"
SMTP_PASSWORD = "Pw-4-the-relay!"


def outcome(status: Status = Status.SUCCESS, name: str = "courses.txt", **changes: object) -> FileOutcome:
    """A Learn outcome with every field filled, as the pipeline hands it over."""
    accepted = status not in (Status.REJECTED, Status.HELD)
    counts = {
        Status.SUCCESS: (0, 120, 0, 0),
        Status.WARNINGS: (0, 117, 3, 0),
        Status.ERRORS: (0, 110, 0, 10),
        Status.TIMED_OUT: (40, 80, 0, 0),
        Status.FAILED: (0, 0, 0, 0),
    }.get(status, (0, 0, 0, 0))
    folder = (
        Path("/srv/sis/var/archive")
        if status in (Status.SUCCESS, Status.WARNINGS, Status.ERRORS)
        else Path("/srv/sis/var/failed")
    )
    result = FileOutcome(
        name=name,
        route="sis",
        target="learn",
        target_type="learn",
        status=status,
        size=10_444,
        rows=120,
        object="course",
        operation="store",
        receipt=Receipt("learn", "learn", "REF-8f3c2a61") if accepted else None,
        progress=Progress(*counts) if accepted else None,
        started_at=START,
        finished_at=START + timedelta(minutes=2, seconds=5),
        final_path=folder / f"stamped_{name}",
        drop_folder=DROP,
        message={
            Status.FAILED: "Learn rejected the upload: HTTP 400 bad header",
            Status.REJECTED: "the header matches no known feed type",
            Status.HELD: "the refresh file shrank by 40% compared with the last accepted one",
        }.get(status, ""),
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return result


def batch(*files: FileOutcome) -> BatchOutcome:
    return BatchOutcome(
        route="sis", started_at=START, finished_at=START + timedelta(minutes=6, seconds=41), files=list(files)
    )


def config(tmp_path: Path, **email: object) -> Config:
    settings: dict[str, Any] = {"transport": "file", "from_addr": "fa@example.edu", "to": ("a@example.edu",)}
    settings.update(email)
    heartbeat = str(settings.pop("heartbeat", ""))
    return Config(
        path=None,
        agent=AgentSettings(work_dir=tmp_path / "var"),
        email=EmailSettings(**settings),
        heartbeat=HeartbeatSettings(url=heartbeat),
    )


def parse(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content())


# -- formatting ---------------------------------------------------------------------------------------


def test_formatting_of_sizes_durations_and_times() -> None:
    assert [format_size(n) for n in (0, 1023, 1536, 5 * 1024 * 1024 + 1)] == [
        "0 B",
        "1023 B",
        "1.5 KB",
        "5.0 MB",
    ]
    assert [format_duration(s) for s in (4.4, 125, 3730, None)] == [
        "4 s",
        "2 min 05 s",
        "1 h 02 min 10 s",
        "—",
    ]
    assert format_time(START) == "2026-11-22 07:00:05 UTC"
    assert format_time(START.astimezone(timezone(timedelta(hours=2)))) == "2026-11-22 07:00:05 UTC"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05 UTC"


# -- subjects ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status), ids=[s.name for s in Status])
def test_per_file_subject_for_every_status(status: Status) -> None:
    rendered = Renderer().file_report(outcome(status))
    assert rendered.subject == f"[feed-agent] {status.value} courses.txt — course/store"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"target": "bucket", "target_type": "s3", "object": None}, "s3/upload"),
        ({"target": "archive", "target_type": "s3", "object": "course"}, "s3/upload"),
        ({"target": "jobs", "target_type": "job", "operation": None}, "job/upload"),
        ({"object": None}, "unknown/store"),
        ({"object": "membership", "operation": "refresh"}, "membership/refresh"),
    ],
    ids=["s3", "s3-with-object", "job", "learn-undetected", "learn-refresh"],
)
def test_subject_object_part_for_other_targets(changes: dict[str, object], expected: str) -> None:
    changed = outcome(Status.SUCCESS)
    for key, value in changes.items():
        setattr(changed, key, value)
    assert Renderer().file_report(changed).subject.endswith(f" — {expected}")


def test_summary_subject_counts_statuses_in_fixed_order() -> None:
    files = [
        outcome(Status.ERRORS, "c.txt"),
        outcome(Status.SUCCESS, "a.txt"),
        outcome(Status.SUCCESS, "b.txt"),
    ]
    assert Renderer().summary(batch(*files)).subject == "[feed-agent] Summary: 3 files — 2 SUCCESS, 1 ERRORS"
    every = [outcome(s, f"{s.name}.txt") for s in reversed(Status)]
    assert Renderer().summary(batch(*every)).subject == (
        "[feed-agent] Summary: 7 files — 1 SUCCESS, 1 WARNINGS, 1 ERRORS, 1 FAILED, 1 REJECTED, 1 HELD, 1 TIMED OUT"
    )


def test_alert_subjects() -> None:
    renderer = Renderer()
    running = outcome(Status.SUCCESS, "users.txt", object="person", finished_at=None)
    assert renderer.still_processing(running, 42).subject == "[feed-agent] STILL PROCESSING users.txt — person/store"
    assert renderer.missing("sis", DROP, 26, None).subject == "[feed-agent] MISSING: no file on route sis for 26 hours"


# -- next steps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.SUCCESS, ["Nothing to do."]),
        (Status.WARNINGS, ["3 record(s) have warnings", f"look up reference REF-8f3c2a61 in {LEARN_LOGS}"]),
        (
            Status.ERRORS,
            ["10 record(s) were not processed", f"look up reference REF-8f3c2a61 in {LEARN_LOGS}"],
        ),
        (
            Status.FAILED,
            [
                "What is wrong: Learn rejected the upload: HTTP 400 bad header.",
                f"Fix it, then move the file back into {DROP}.",
            ],
        ),
        (
            Status.REJECTED,
            [
                "What is wrong: the header matches no known feed type.",
                f"Fix it, then move the file back into {DROP}.",
            ],
        ),
        (
            Status.HELD,
            [
                "the refresh file shrank by 40%",
                f"move the file back into {DROP}",
                'feed-agent post "/srv/sis/var/failed/stamped_courses.txt" --force',
            ],
        ),
        (
            Status.TIMED_OUT,
            [
                "The upload was accepted with reference REF-8f3c2a61",
                f"Check reference REF-8f3c2a61 in {LEARN_LOGS} before re-sending",
                f"move the file back into {DROP}",
            ],
        ),
    ],
    ids=[s.name for s in Status],
)
def test_next_step_per_status(status: Status, expected: list[str]) -> None:
    step = next_step(outcome(status))
    for words in expected:
        assert words in step


def test_next_step_for_a_file_held_behind_a_failed_dependency() -> None:
    step = next_step(outcome(Status.HELD, "enrolments.txt", held_by="courses.txt", message=""))
    assert "depends on courses.txt, which did not reach Learn" in step
    assert f"Fix courses.txt first, then move both files back into {DROP}." in step


def test_next_step_names_the_job_id_for_job_targets() -> None:
    job = outcome(Status.ERRORS, target="jobs", target_type="job", receipt=Receipt("jobs", "job", "job-77"))
    assert "job id job-77 in the job service's log" in next_step(job)


# -- rendering ---------------------------------------------------------------------------------------------


def test_shipped_templates_are_all_there() -> None:
    folder = shipped_templates_dir()
    assert sorted(p.name for p in folder.glob("*.j2")) == sorted(TEMPLATE_NAMES)


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


def test_templates_dir_overrides_one_file_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "per_file.txt.j2").write_text("CUSTOM {{ report.status.label }} {{ report.name }}\n")
    rendered = Renderer(tmp_path).file_report(outcome(Status.WARNINGS))
    assert rendered.text == "CUSTOM WARNINGS courses.txt\n"
    assert "What to do next" in rendered.html  # shipped HTML still used
    assert Renderer(tmp_path).summary(batch(outcome())).text.startswith("SUCCESS: summary")


def test_a_broken_override_falls_back_to_the_shipped_template(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "per_file.html.j2").write_text("<p>{{ report.no_such_field }}</p>")
    with caplog.at_level(logging.WARNING, logger="agent.reports"):
        rendered = Renderer(tmp_path).file_report(outcome(Status.SUCCESS))
    assert "What to do next" in rendered.html
    assert "per_file.html.j2" in caplog.text and "using the shipped" in caplog.text


# -- EmailReporter ------------------------------------------------------------------------------------------


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
    reporter = EmailReporter(config(tmp_path, per_file=False, summary=False))
    reporter.file_done(outcome())
    reporter.batch_done(batch(outcome()))
    assert not reporter.sent and not reporter.last_paths
    reporter.missing("sis", DROP, 26, None)  # alerts are not per-file reports: still sent
    assert len(reporter.last_paths) == 1


def test_mail_failure_is_journaled_and_listed_in_the_next_summary(
    tmp_path: Path, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    refused = config(tmp_path, transport="smtp", host="127.0.0.1", port=free_port(), security="none")
    no_retry = Mailer(refused.email, tmp_path / "outbox", retry=RetryPolicy(attempts=1))
    failing = EmailReporter(refused, journal, mailer=no_retry)
    with caplog.at_level(logging.INFO, logger="agent.notify"):
        failing.file_done(outcome(Status.ERRORS))  # must not raise
    assert "report not sent: [feed-agent] ERRORS courses.txt" in caplog.text
    [problem] = journal.unreported_mail_failures()
    assert problem.startswith("[feed-agent] ERRORS courses.txt — course/store: connection refused")

    working = EmailReporter(config(tmp_path), journal)  # the mail server is back (file outbox here)
    run = batch(outcome(Status.SUCCESS))
    working.batch_done(run)
    assert run.mail_problems == [problem]
    summary = parse(working.last_paths[-1])
    assert "connection refused" in body(summary, "plain") and "connection refused" in body(summary, "html")
    assert journal.unreported_mail_failures() == []  # reported once, not in every summary

    second = batch(outcome(Status.SUCCESS))
    working.batch_done(second)
    assert second.mail_problems == []


def test_without_a_journal_failures_are_kept_in_memory(tmp_path: Path) -> None:
    refused = config(tmp_path, transport="smtp", host="127.0.0.1", port=free_port(), security="none")
    no_retry = Mailer(refused.email, tmp_path / "o", retry=RetryPolicy(attempts=1))
    reporter = EmailReporter(refused, mailer=no_retry)
    reporter.file_done(outcome())
    run = batch(outcome())
    reporter.batch_done(run)  # the summary fails too: both stay listed for the next one
    assert len(run.mail_problems) == 1 and "courses.txt" in run.mail_problems[0]
    again = batch(outcome())
    reporter.batch_done(again)
    assert any("Summary" in p for p in again.mail_problems)


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
