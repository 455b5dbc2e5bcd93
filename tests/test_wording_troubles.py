"""The words of a failure episode: what fails, what it means meanwhile, what to do, and its subject."""

from __future__ import annotations

import errno
from datetime import datetime, timezone
from pathlib import Path

from agent.errors import JournalError
from agent.records import TroubleNotice
from agent.render import Renderer
from agent.wording_troubles import trouble_advice, trouble_meaning, trouble_next_step, trouble_subject, trouble_title

SINCE = datetime(2026, 11, 29, 2, 0, tzinfo=timezone.utc)
ARCHIVE = Path("/var/lib/feed-agent/archive")


def notice(key: str = "archive", **changes: object) -> TroubleNotice:
    values: dict[str, object] = {
        "key": key,
        "problem": f"{ARCHIVE}/users.txt: Permission denied",
        "advice": trouble_advice(PermissionError(errno.EACCES, "Permission denied"), ARCHIVE),
        "since": SINCE,
        "attempts": 1,
        "retry_seconds": 5.0,
    }
    values.update(changes)
    return TroubleNotice(**values)  # type: ignore[arg-type]


def test_each_kind_of_episode_says_what_fails_in_plain_words() -> None:
    assert trouble_title("drop:/srv/sis/out") == "Files cannot be taken from /srv/sis/out"
    assert trouble_title("archive") == "Delivered files cannot be moved to archive/"
    assert trouble_title("failed") == "Files that were not sent cannot be moved to failed/"
    assert trouble_title("recovery") == "Interrupted work cannot be finished"
    assert "not sent again" in trouble_meaning(notice("archive"))
    assert trouble_subject(notice()) == "[feed-agent] PROBLEM: Delivered files cannot be moved to archive/"
    cleared = notice(cleared_at=SINCE.replace(hour=3), attempts=7, retry_seconds=None)
    assert trouble_subject(cleared) == "[feed-agent] RESOLVED: Delivered files cannot be moved to archive/"
    assert "after 7 failed attempt(s)" in trouble_meaning(cleared)


def test_the_advice_follows_the_error_the_system_gave() -> None:
    assert f"permission to write in {ARCHIVE}" in trouble_advice(PermissionError(errno.EPERM, "x"), ARCHIVE)
    assert "Free some space on the disk that holds" in trouble_advice(OSError(errno.ENOSPC, "full"), ARCHIVE)
    assert "read-only filesystem" in trouble_advice(OSError(errno.EROFS, "ro"), ARCHIVE)
    assert "exists" in trouble_advice(FileNotFoundError(errno.ENOENT, "gone"), ARCHIVE)
    assert "Read the error" in trouble_advice(JournalError("the disk holding work_dir is full"), None)
    step = trouble_next_step(notice())
    assert step.startswith("Give the agent's user") and "next try in 5 s" in step and "one more email" in step


def test_the_alert_email_carries_the_facts_and_the_advice() -> None:
    rendered = Renderer().trouble(notice(attempts=3))
    text = " ".join(rendered.text.split())
    assert rendered.subject == "[feed-agent] PROBLEM: Delivered files cannot be moved to archive/"
    assert "Failed attempts: 3" in text and "Permission denied" in text
    assert f"permission to write in {ARCHIVE}" in text
    assert "PROBLEM" in rendered.html and "Delivered files cannot be moved to archive/" in rendered.html
    resolved = Renderer().trouble(notice(cleared_at=SINCE.replace(hour=4), retry_seconds=None))
    assert "Works again since" in resolved.text and "Nothing to do" in resolved.text
