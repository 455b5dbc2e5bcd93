"""Outcomes and batches as the pipeline hands them to the reports, with every field filled (for report tests)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from agent.records import BatchOutcome, FileOutcome, Progress, Receipt, Status
from agent.settings import AgentSettings, Config, EmailSettings, HeartbeatSettings

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


def outbox_messages(outbox: Path) -> list[EmailMessage]:
    """Every email the file transport wrote, oldest first."""
    return [parse(path) for path in sorted(outbox.glob("*.eml"))]
