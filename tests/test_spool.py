"""The mail spool with a real SMTP server (aiosmtpd, STARTTLS + AUTH): reports wait while it is down
and arrive exactly once, oldest first, when it is back; old ones are set aside after give_up_hours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from agent.cli import main
from agent.commands import status_report
from agent.config import load_config
from agent.daemon import Agent
from agent.mailer import Mailer
from agent.settings import Config
from agent.simulator import LearnSimulator
from agent.spool import MailSpool, spool_state
from tests.support.agentconf import write_config
from tests.support.clock import FakeClock
from tests.support.learn import COURSE_HEADER, PEOPLE_HEADER, course_rows, person_rows, write_flatfile
from tests.support.net import free_port
from tests.support.smtp import SmtpServer, TlsCert

USER, PASSWORD = "agent@example.edu", "spool-s3cret-pw"


def smtp_config(tmp_path: Path, learn_url: str, port: int, cert: TlsCert, extra: str = "") -> Path:
    email = (
        f"transport = smtp\nhost = 127.0.0.1\nport = {port}\nsecurity = starttls\nverify_tls = {cert.cert}\n"
        "username = ${SMTP_USERNAME}\npassword = ${SMTP_PASSWORD}\n"
        f"from = feed-agent@example.edu\nto = sis-admins@example.edu\ntimeout_seconds = 5\n{extra}"
    )
    ini = write_config(tmp_path, learn_url, email=email)
    with (tmp_path / ".env").open("a", encoding="utf-8") as env:
        env.write(f"SMTP_USERNAME={USER}\nSMTP_PASSWORD={PASSWORD}\n")
    return ini


def test_reports_of_a_run_with_the_mail_server_down_arrive_exactly_once_at_the_next_run(
    tmp_path: Path,
    learn_sim: LearnSimulator,
    smtp_server: Callable[..., SmtpServer],
    tls_cert: TlsCert,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()  # nothing listens there during the first run
    ini = smtp_config(tmp_path, learn_sim.url, port, tls_cert)
    drop = tmp_path / "drop"
    write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
    write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(1))

    status = main(["-c", str(ini), "run", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1  # every file succeeded, but the admin has not heard of it yet
    assert "feed-agent: 3 reports waiting to be sent in " in err and "connection refused" in err
    assert "they are sent again at the next run" in err
    unsent = tmp_path / "var" / "outbox" / "unsent"
    assert len(list(unsent.glob("*.eml"))) == 3
    assert "3 reports waiting to be sent" in status_report(load_config(ini))

    server = smtp_server(tls="starttls", users={USER: PASSWORD}, auth_required=True, port=port)
    assert main(["-c", str(ini), "run", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")  # a good night: cron mails nothing

    subjects = [str(m["Subject"]) for m in server.parsed()]
    assert subjects[:2] == [
        "[feed-agent] SUCCESS users.txt — person/store",
        "[feed-agent] SUCCESS courses.txt — course/store",
    ]
    assert len(subjects) == 3 and subjects[2].startswith("[feed-agent] Summary: 2 files")  # oldest first
    assert server.logins == [USER] * 3  # each message went through AUTH
    assert not list(unsent.glob("*.eml"))
    assert "none waiting" in status_report(load_config(ini))

    assert main(["-c", str(ini), "run"]) == 0
    assert len(server.messages) == 3  # exactly once: nothing is sent twice


def test_post_sends_what_waits_before_its_own_report(
    tmp_path: Path, learn_sim: LearnSimulator, smtp_server: Callable[..., SmtpServer], tls_cert: TlsCert
) -> None:
    port = free_port()
    ini = smtp_config(tmp_path, learn_sim.url, port, tls_cert, "summary = no\n")
    write_flatfile(tmp_path / "drop" / "users.txt", PEOPLE_HEADER, person_rows(2))
    assert main(["-c", str(ini), "run"]) == 1
    server = smtp_server(tls="starttls", users={USER: PASSWORD}, auth_required=True, port=port)
    manual = tmp_path / "courses.txt"
    write_flatfile(manual, COURSE_HEADER, course_rows(1))
    assert main(["-c", str(ini), "post", str(manual)]) == 0
    assert [str(m["Subject"]).split()[2] for m in server.parsed()] == ["users.txt", "courses.txt"]


def spooled(spool: MailSpool, subject: str) -> Path:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = subject, "fa@example.edu", "a@example.edu"
    message.set_content("body")
    return spool.put(message)


def spool_config(tmp_path: Path, port: int, give_up_hours: float = 72) -> Config:
    ini = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        email=f"transport = smtp\nhost = 127.0.0.1\nport = {port}\nsecurity = none\nto = a@example.edu\n"
        f"give_up_hours = {give_up_hours}\n",
    )
    return load_config(ini, environ={})


def test_reports_older_than_give_up_hours_are_set_aside_with_one_log_line(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = spool_config(tmp_path, port, give_up_hours=2)
    clock = FakeClock()
    spool = MailSpool(config, Mailer(config.email, config.agent.outbox_dir), clock=clock)
    spooled(spool, "[feed-agent] old news")
    assert spool.deliver(force=True) == 0 and spool.last_error and "connection refused" in spool.last_error
    server = smtp_server(port=port)
    assert spool.deliver() == 0 and not server.messages  # just after a failure: a new report only queues
    clock.advance(timedelta(hours=1).total_seconds())
    spooled(spool, "[feed-agent] fresh news")
    clock.advance(timedelta(hours=1, minutes=1).total_seconds())

    assert spool.deliver() == 1  # the pause is over; the old one is past give_up_hours
    assert [str(m["Subject"]) for m in server.parsed()] == ["[feed-agent] fresh news"]
    assert "report given up after 2 hours unsent" in caplog.text and "old news" in caplog.text
    state = spool_state(config)
    assert (state.waiting, state.gave_up) == (0, 1)
    assert "1 report never sent (given up after give_up_hours)" in status_report(config)


def test_a_refused_message_stays_queued_and_does_not_block_the_rest(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server(temporary_failures=1)  # the first DATA gets 451
    config = spool_config(tmp_path, server.port)
    spool = MailSpool(config, Mailer(config.email, config.agent.outbox_dir), clock=FakeClock())
    first, second = spooled(spool, "[feed-agent] first"), spooled(spool, "[feed-agent] second")
    assert spool.deliver(force=True) == 1
    assert [str(m["Subject"]) for m in server.parsed()] == ["[feed-agent] second"]
    assert first.exists() and not second.exists() and "451" in (spool.last_error or "")
    assert spool.deliver(force=True) == 1
    assert [str(m["Subject"]) for m in server.parsed()] == ["[feed-agent] second", "[feed-agent] first"]


def test_a_message_the_server_never_confirmed_is_set_aside_not_sent_twice(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server(answer_delay=3.0)  # longer than the client's timeout
    ini = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        email=f"transport = smtp\nhost = 127.0.0.1\nport = {server.port}\nsecurity = none\n"
        "to = a@example.edu\ntimeout_seconds = 1\n",
    )
    config = load_config(ini, environ={})
    spool = MailSpool(config, Mailer(config.email, config.agent.outbox_dir), clock=FakeClock())
    spooled(spool, "[feed-agent] in doubt")
    assert spool.deliver(force=True) == 0
    assert "report may or may not have arrived" in caplog.text and "in doubt" in caplog.text
    state = spool_state(config)
    assert (state.waiting, state.unconfirmed) == (0, 1)
    assert spool.deliver(force=True) == 0  # never sent again automatically
    assert "1 report in " in status_report(config) and "never confirmed" in status_report(config)


def test_watch_housekeeping_sends_what_waits(tmp_path: Path, smtp_server: Callable[..., SmtpServer]) -> None:
    port = free_port()
    config = spool_config(tmp_path, port)
    spooled(MailSpool(config, Mailer(config.email, config.agent.outbox_dir)), "[feed-agent] from last night")
    server = smtp_server(port=port)
    agent = Agent(config, clock=FakeClock())
    try:
        agent._housekeeping()  # what `watch` runs every minute
    finally:
        agent.close()
    assert [str(m["Subject"]) for m in server.parsed()] == ["[feed-agent] from last night"]
    assert spool_state(config).waiting == 0
