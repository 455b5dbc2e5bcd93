"""Mailer against a real aiosmtpd server on loopback: TLS, AUTH, refusals, retries, the file outbox."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from agent.errors import MailError
from agent.mailer import Mailer, build_message, outbox_name
from agent.render import RenderedEmail
from agent.retry import RetryPolicy
from agent.settings import EmailSettings, Secret
from tests.support.clock import FakeClock
from tests.support.net import free_port
from tests.support.smtp import SmtpServer, TlsCert

USER = "feed-agent-smtp-user"
PASSWORD = "Zq8!smtp-Secret-Pw"
RENDERED = RenderedEmail(
    subject="[feed-agent] ERRORS cours€s.txt — course/store",
    text="12 records failed: look up reference abc123.\n",
    html="<p>12 records failed: look up reference <b>abc123</b>.</p>",
)

StartServer = Callable[..., SmtpServer]


def smtp_settings(server: SmtpServer | None = None, **changes: object) -> EmailSettings:
    values: dict[str, object] = {
        "transport": "smtp",
        "host": server.host if server else "127.0.0.1",
        "port": server.port if server else free_port(),
        "security": "none",
        "from_addr": "feed-agent@example.edu",
        "to": ("admins@example.edu", "ops@example.edu"),
        "timeout_seconds": 10.0,
    }
    values.update(changes)
    return EmailSettings(**values)  # type: ignore[arg-type]


def signed_in_settings(server: SmtpServer, tls_cert: TlsCert, security: str) -> EmailSettings:
    """TLS verified against the test certificate, and AUTH with the test account."""
    return smtp_settings(
        server, security=security, verify_tls=str(tls_cert.cert), username=Secret(USER), password=Secret(PASSWORD)
    )


class Sleeps(FakeClock):
    """Records the pauses between attempts instead of sleeping (tests stay fast and exact)."""

    def __eq__(self, other: object) -> bool:
        return self.sleeps == other

    __hash__ = None  # type: ignore[assignment]


TEST_RETRY = RetryPolicy(attempts=3, first_delay=0.5, factor=3.0, cap=1.5)


def mailer(settings: EmailSettings, tmp_path: Path, sleeps: Sleeps | None = None) -> Mailer:
    return Mailer(settings, tmp_path / "outbox", retry=TEST_RETRY, clock=sleeps if sleeps is not None else Sleeps())


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# -- message format --------------------------------------------------------------------------------


def test_build_message_is_multipart_alternative_utf8_with_headers() -> None:
    settings = smtp_settings(from_addr="Feed Agent <feed-agent@example.edu>")
    message = parse(build_message(RENDERED, settings).as_bytes())

    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == RENDERED.subject
    assert message["From"] == "Feed Agent <feed-agent@example.edu>"
    assert message["To"] == "admins@example.edu, ops@example.edu"
    assert message["Date"].datetime is not None
    assert message["Message-ID"].endswith("@example.edu>")
    for part in message.iter_parts():
        assert part.get_content_charset() == "utf-8"
    assert message.get_body(("plain",)).get_content() == RENDERED.text  # type: ignore[union-attr]
    assert "<b>abc123</b>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]


# -- SMTP ---------------------------------------------------------------------------------------------


def test_starttls_verified_with_ca_bundle_and_auth(smtp_server: StartServer, tls_cert: TlsCert, tmp_path: Path) -> None:
    server = smtp_server(tls="starttls", users={USER: PASSWORD}, auth_required=True)
    settings = signed_in_settings(server, tls_cert, "starttls")

    assert mailer(settings, tmp_path).send(RENDERED) is None

    [message] = server.parsed()
    assert message["Subject"] == RENDERED.subject
    assert message.get_body(("html",)) is not None
    assert server.logins == [USER]


def test_starttls_with_untrusted_certificate_fails_with_a_fix(smtp_server: StartServer, tmp_path: Path) -> None:
    server = smtp_server(tls="starttls")
    sleeps = Sleeps()
    settings = smtp_settings(server, security="starttls")  # verify_tls = True: system CAs only

    with pytest.raises(MailError) as failure:
        mailer(settings, tmp_path, sleeps).send(RENDERED)

    assert "TLS verification failed" in str(failure.value)
    assert "verify_tls = /path/to/ca-bundle.pem" in str(failure.value)
    assert not failure.value.temporary and sleeps == []  # a certificate does not fix itself
    assert server.messages == []


def test_verify_tls_off_accepts_a_self_signed_server(smtp_server: StartServer, tmp_path: Path) -> None:
    server = smtp_server(tls="starttls")
    mailer(smtp_settings(server, security="starttls", verify_tls=False), tmp_path).send(RENDERED)
    assert len(server.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # it is TLS: implicit
def test_implicit_tls_with_auth(smtp_server: StartServer, tls_cert: TlsCert, tmp_path: Path) -> None:
    server = smtp_server(tls="ssl", users={USER: PASSWORD}, auth_required=True)
    settings = signed_in_settings(server, tls_cert, "ssl")

    mailer(settings, tmp_path).send(RENDERED)

    assert [m["Subject"] for m in server.parsed()] == [RENDERED.subject]
    assert server.logins == [USER]


def test_wrong_password_is_final_and_names_no_secret(
    smtp_server: StartServer, tls_cert: TlsCert, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server(tls="starttls", users={USER: "the-right-one"}, auth_required=True)
    sleeps = Sleeps()
    settings = signed_in_settings(server, tls_cert, "starttls")

    with caplog.at_level(logging.DEBUG), pytest.raises(MailError) as failure:
        mailer(settings, tmp_path, sleeps).send(RENDERED)

    text = str(failure.value)
    assert "AUTH rejected" in text and "535" in text and "SMTP_PASSWORD" in text
    assert sleeps == [] and server.messages == []
    for secret in (USER, PASSWORD):
        assert secret not in text
        assert secret not in caplog.text


def test_server_refusing_data_with_5xx_is_final(smtp_server: StartServer, tmp_path: Path) -> None:
    server = smtp_server(data_reply="554 5.6.0 Message rejected by policy")
    sleeps = Sleeps()

    with pytest.raises(MailError) as failure:
        mailer(smtp_settings(server), tmp_path, sleeps).send(RENDERED)

    assert "554" in str(failure.value) and "rejected by policy" in str(failure.value)
    assert not failure.value.temporary
    assert server.data_attempts == 1 and sleeps == []


def test_temporary_4xx_is_retried_until_it_clears(
    smtp_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server(temporary_failures=2)
    sleeps = Sleeps()

    with caplog.at_level(logging.WARNING, logger="agent.mailer"):
        mailer(smtp_settings(server), tmp_path, sleeps).send(RENDERED)

    assert server.data_attempts == 3
    assert len(server.messages) == 1
    assert sleeps == [0.5, 1.5]
    assert "451" in caplog.text and "attempt 1 of 3" in caplog.text


def test_temporary_4xx_that_never_clears_gives_up(smtp_server: StartServer, tmp_path: Path) -> None:
    server = smtp_server(temporary_failures=10)
    sleeps = Sleeps()

    with pytest.raises(MailError) as failure:
        mailer(smtp_settings(server), tmp_path, sleeps).send(RENDERED)

    assert failure.value.temporary and "gave up after 3 attempts" in str(failure.value)
    assert server.data_attempts == 3 and server.messages == []


def test_connection_refused_is_retried_then_explained(tmp_path: Path) -> None:
    sleeps = Sleeps()
    settings = smtp_settings(port=free_port())  # nothing listens there

    with pytest.raises(MailError) as failure:
        mailer(settings, tmp_path, sleeps).send(RENDERED)

    assert "connection refused" in str(failure.value)
    assert f"127.0.0.1:{settings.port}" in str(failure.value)
    assert sleeps == [0.5, 1.5]


def test_plain_connection_to_a_starttls_only_server_says_so(smtp_server: StartServer, tmp_path: Path) -> None:
    server = smtp_server(tls="starttls")
    with pytest.raises(MailError) as failure:
        mailer(smtp_settings(server, security="none"), tmp_path).send(RENDERED)
    assert "requires STARTTLS" in str(failure.value) and "security = starttls" in str(failure.value)


# -- check ---------------------------------------------------------------------------------------------


def test_check_ok_and_send_test(smtp_server: StartServer, tls_cert: TlsCert, tmp_path: Path) -> None:
    server = smtp_server(tls="starttls", users={USER: PASSWORD}, auth_required=True)
    settings = signed_in_settings(server, tls_cert, "starttls")
    box = mailer(settings, tmp_path)

    [only] = box.check()
    assert only.ok and only.item == f"mail server 127.0.0.1:{server.port}"
    assert "STARTTLS" in only.detail and "logged in" in only.detail
    assert server.messages == []

    results = box.check(send_test=True)
    assert [r.ok for r in results] == [True, True]
    assert "admins@example.edu" in results[1].item
    [test_message] = server.parsed()
    assert "Test email" in test_message["Subject"]


@pytest.mark.parametrize(
    ("server_options", "setting_changes", "expected"),
    [
        ({"tls": "starttls"}, {"security": "starttls"}, "TLS verification failed"),
        (
            {"tls": "starttls", "users": {USER: "other"}},
            {"security": "starttls", "verify": True, "username": Secret(USER), "password": Secret(PASSWORD)},
            "AUTH rejected",
        ),
        ({}, {"username": Secret(USER), "password": Secret(PASSWORD)}, "does not offer AUTH"),
        ({}, {"security": "starttls"}, "does not offer STARTTLS"),
    ],
    ids=["untrusted-cert", "bad-password", "no-auth", "no-starttls"],
)
def test_check_names_the_precise_problem(
    smtp_server: StartServer,
    tls_cert: TlsCert,
    tmp_path: Path,
    server_options: dict[str, object],
    setting_changes: dict[str, object],
    expected: str,
) -> None:
    server = smtp_server(**server_options)
    changes = dict(setting_changes)
    if changes.pop("verify", False):
        changes["verify_tls"] = str(tls_cert.cert)
    results = mailer(smtp_settings(server, **changes), tmp_path).check(send_test=True)

    assert len(results) == 1  # no test message after a failed connection check
    assert not results[0].ok and expected in results[0].detail
    assert USER not in results[0].detail and PASSWORD not in results[0].detail


def test_check_refused_connection(tmp_path: Path) -> None:
    [result] = mailer(smtp_settings(port=free_port()), tmp_path).check()
    assert not result.ok and "connection refused" in result.detail


def test_check_none_and_file_transports(tmp_path: Path) -> None:
    [disabled] = mailer(EmailSettings(transport="none"), tmp_path).check(send_test=True)
    assert disabled.ok and "email disabled" in disabled.detail

    results = mailer(EmailSettings(transport="file"), tmp_path).check(send_test=True)
    assert [r.ok for r in results] == [True, True]
    assert "writable" in results[0].detail
    written = list((tmp_path / "outbox").glob("*.eml"))
    assert len(written) == 1 and str(written[0]) in results[1].detail
    assert [p.name for p in (tmp_path / "outbox").iterdir()] == [written[0].name]  # probe removed


def test_check_file_transport_with_unusable_outbox(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    box = Mailer(EmailSettings(transport="file"), tmp_path / "not-a-folder" / "outbox")
    [result] = box.check(send_test=True)
    assert not result.ok and "not writable" in result.detail


# -- file and none transports ----------------------------------------------------------------------------


def test_file_transport_writes_parseable_sortable_eml(tmp_path: Path) -> None:
    box = mailer(EmailSettings(transport="file", from_addr="fa@example.edu", to=("a@example.edu",)), tmp_path)
    subjects = [f"[feed-agent] SUCCESS file{i}.txt — term/store" for i in range(5)]

    paths = [box.send(RenderedEmail(s, f"text {i}", f"<p>html {i}</p>")) for i, s in enumerate(subjects)]

    assert all(p is not None and p.parent == tmp_path / "outbox" and p.suffix == ".eml" for p in paths)
    assert len({p for p in paths}) == 5
    assert sorted(p.name for p in paths if p) == [p.name for p in paths if p]  # creation order sorts
    assert sorted(os.listdir(tmp_path / "outbox")) == sorted(p.name for p in paths if p)  # no temp files
    for subject, path in zip(subjects, paths, strict=True):
        assert path is not None
        raw = path.read_bytes()
        assert b"\r\n" in raw
        message = parse(raw)
        assert message["Subject"] == subject and message["To"] == "a@example.edu"
        assert message.get_content_type() == "multipart/alternative"


def test_outbox_names_are_unique_within_one_instant() -> None:
    names = {outbox_name("[feed-agent] Summary: 1 files — 1 SUCCESS") for _ in range(200)}
    assert len(names) == 200


def test_file_transport_reports_an_unwritable_outbox(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the outbox folder should be")
    box = Mailer(EmailSettings(transport="file"), tmp_path / "blocker")
    with pytest.raises(MailError, match="cannot write to the outbox"):
        box.send(RENDERED)


def test_none_transport_sends_nothing(tmp_path: Path) -> None:
    box = mailer(EmailSettings(transport="none"), tmp_path)
    assert box.send(RENDERED) is None
    assert not (tmp_path / "outbox").exists()


def test_unusable_ca_bundle_is_named(smtp_server: StartServer, tmp_path: Path) -> None:
    server = smtp_server(tls="starttls")
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("this is not a certificate")
    sleeps = Sleeps()
    with pytest.raises(MailError) as failure:
        mailer(smtp_settings(server, security="starttls", verify_tls=str(bogus)), tmp_path, sleeps).send(RENDERED)
    assert str(bogus) in str(failure.value) and "cannot be used" in str(failure.value)
    assert sleeps == [] and server.messages == []


def test_smtp_without_recipients_is_a_clear_final_error(smtp_server: StartServer, tmp_path: Path) -> None:
    server = smtp_server()
    with pytest.raises(MailError, match="no recipients"):
        mailer(smtp_settings(server, to=()), tmp_path).send(RENDERED)
    assert server.data_attempts == 0


def test_attachments_follow_the_two_bodies(tmp_path: Path) -> None:
    from agent.render import Attachment

    rendered = RenderedEmail(
        subject="[feed-agent] ERRORS x",
        text="t",
        html="<p>h</p>",
        attachments=(Attachment("x.log.csv", b"level,message\nError,bad\n"),),
    )
    path = mailer(EmailSettings(transport="file", to=("a@x.edu",)), tmp_path).send(rendered)
    assert path is not None
    message = parse(path.read_bytes())
    assert message.get_content_type() == "multipart/mixed"
    [attached] = list(message.iter_attachments())
    assert attached.get_filename() == "x.log.csv" and attached.get_content() == "level,message\nError,bad\n"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None


def test_the_file_outbox_keeps_reports_for_outbox_retention_days_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    settings = EmailSettings(transport="file", to=("a@example.edu",), outbox_retention_days=30)
    box = Mailer(settings, tmp_path / "outbox", clock=clock)
    outbox = tmp_path / "outbox"
    (outbox / "unsent").mkdir(parents=True)
    old = clock.now() - timedelta(days=31)
    expired = outbox / outbox_name("[feed-agent] SUCCESS a.txt", old)
    recent = outbox / outbox_name("[feed-agent] SUCCESS b.txt", clock.now() - timedelta(days=29))
    never_sent = outbox / "unsent" / outbox_name("[feed-agent] FAILED c.txt", old)  # the spool's: kept
    not_ours = outbox / "notes-2019.eml"
    for path in (expired, recent, never_sent, not_ours):
        path.write_bytes(b"Subject: x\r\n\r\nbody\r\n")

    with caplog.at_level(logging.INFO, logger="agent.mailer"):
        written = box.send(RENDERED)

    assert written is not None and written.is_file()
    assert not expired.exists() and recent.exists() and never_sent.exists() and not_ours.exists()
    assert f"outbox retention: deleted 1 report(s) older than 30 days from {outbox}" in caplog.text

    later = outbox / outbox_name("[feed-agent] SUCCESS d.txt", old)
    later.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    clock.advance(600)
    box.send(RENDERED)
    assert later.exists()  # a listing of the outbox at most once an hour
    clock.advance(3600)
    box.send(RENDERED)
    assert not later.exists()


def test_outbox_retention_of_zero_keeps_every_report(tmp_path: Path) -> None:
    clock = FakeClock()
    box = Mailer(EmailSettings(transport="file", outbox_retention_days=0), tmp_path / "outbox", clock=clock)
    (tmp_path / "outbox").mkdir()
    ancient = tmp_path / "outbox" / outbox_name("[feed-agent] SUCCESS a.txt", clock.now() - timedelta(days=3650))
    ancient.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    box.send(RENDERED)
    assert ancient.exists()
