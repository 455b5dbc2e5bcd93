"""`agent.mailpolicy`: reports are built with the standard policy's bytes, only cheaper."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage

from agent.mailpolicy import MESSAGE_POLICY, SMTP_POLICY


def _report(message_policy: policy.EmailPolicy) -> EmailMessage:
    message = EmailMessage(policy=message_policy)
    message["Subject"] = "[feed-agent] ERRORS enrôlements.txt — membership/store, a subject long enough to be folded"
    message["From"] = "Feed Agent <feed-agent@example.edu>"
    message["To"] = "Ops <ops@example.edu>, admins@example.edu"
    message["Date"] = "Sun, 06 Dec 2026 23:30:00 +0000"
    message["Message-ID"] = "<1.feed-agent@example.edu>"
    message.set_content("Line 7: P9999 — not saved.\n" + "x" * 300 + "\n", charset="utf-8")
    message.add_alternative("<p>Line 7: P9999 &mdash; not saved.</p>\n", subtype="html", charset="utf-8")
    message.add_attachment(b"line,message\n7,not saved\n", maintype="text", subtype="csv", filename="log.csv")
    for number, part in enumerate(part for part in message.walk() if part.is_multipart()):
        part.set_boundary(f"boundary-{number}")  # random otherwise: the two messages must compare equal
    return message


def test_a_report_is_byte_for_byte_what_the_standard_policies_write() -> None:
    ours = _report(MESSAGE_POLICY)
    standard = _report(policy.default)
    assert ours.as_bytes(policy=SMTP_POLICY) == standard.as_bytes(policy=policy.SMTP)
    assert ours.as_bytes() == standard.as_bytes()
    assert b"\r\n" in ours.as_bytes(policy=SMTP_POLICY) and b"=?utf-8?" in ours.as_bytes(policy=SMTP_POLICY)


def test_each_headers_class_is_built_once_and_still_parses_its_own_kind() -> None:
    factory = MESSAGE_POLICY.header_factory
    assert factory["To"] is factory["to"] is factory["TO"]
    first, second = _report(MESSAGE_POLICY), _report(MESSAGE_POLICY)
    assert type(first["To"]) is type(second["To"])
    assert [address.username for address in first["To"].addresses] == ["ops", "admins"]
    assert first["Content-Type"].content_type == "multipart/mixed"
