"""Exactly once, in order, through any crash (issue 14's must-show).

A 3-file batch (memberships, courses, people, dropped in that order) is run by a real `feed-agent
run` process against the Learn simulator over HTTP, reporting to a real SMTP server (aiosmtpd), once
per failpoint: the process SIGKILLs itself right after that step, a second `run` without the
failpoint finishes. Then, counted from the other side: every file is in one place (archive/, or
failed/ when UNCONFIRMED or held by it), none in processing/; the simulator received each file at
most once, in dependency order; every report and the summary arrived exactly once; and the journal
says where each file is.

Where the crash hit after the whole body went out (body-sent, receipt-received) the file is not sent
again but UNCONFIRMED; the failed/ failpoints need a file that goes to failed/, so there Learn keeps
the answer to the first upload back (the simulator's withhold-answers fault): UNCONFIRMED too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import failpoints
from agent.config import load_config
from agent.journal import Journal
from agent.journal_schema import FileState
from agent.settings import Config
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
    write_flatfile,
)
from tests.support.smtp import SmtpServer

ANSWER_LOST = {"body-sent", "receipt-received"}  # the crash came after the whole body went out
NEEDS_A_FAILED_FILE = {"fail-renamed", "fail-journaled"}
FILES = {"enrol.txt": "membership", "courses.txt": "course", "users.txt": "person"}  # dropped in this order
IN_ORDER = ["person", "course", "membership"]


def _drop_batch(drop: Path) -> None:
    """Memberships first, people last (mtimes too), so only the agent's ordering can get it right."""
    written = [
        write_flatfile(drop / "enrol.txt", MEMBERSHIP_HEADER, membership_rows(4, courses=2)),
        write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(2)),
        write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(4)),
    ]
    start = time.time() - 60
    for offset, path in enumerate(written):
        os.utime(path, (start + offset, start + offset))


def _run(ini: Path, failpoint: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEED_AGENT")}
    if failpoint is not None:
        env[failpoints.VARIABLE] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "agent", "-c", str(ini), "run"], env=env, capture_output=True, text=True, timeout=90
    )


def _expected(point: str) -> dict[str, str]:
    """Where each file ends: archive/ when delivered, failed/ when UNCONFIRMED or held by that file."""
    if point in ANSWER_LOST or point in NEEDS_A_FAILED_FILE:
        return {"users.txt": "UNCONFIRMED", "courses.txt": "SUCCESS", "enrol.txt": "HELD"}
    return dict.fromkeys(FILES, "SUCCESS")


def _copies(folder: Path) -> Counter[str]:
    """Files per original name in archive/ or failed/ (stamps and reason files aside)."""
    found: Counter[str] = Counter()
    for path in folder.iterdir() if folder.exists() else []:
        if path.name.endswith(".reason.txt") or path.name.endswith(".log.csv"):
            continue
        stem = path.name.split(".")[0]
        found[f"{stem}.txt"] += 1
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize("point", failpoints.NAMES)
def test_a_crash_at_every_step_loses_doubles_and_misreports_nothing(
    point: str, tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    smtp = smtp_server()
    email = f"transport = smtp\nhost = 127.0.0.1\nport = {smtp.port}\nsecurity = none\nto = admins@example.edu\n"
    with LearnSimulator(rows_per_second=100000.0, start_delay=0) as sim:
        if point in NEEDS_A_FAILED_FILE:
            sim.faults.withhold_answers = 1
        ini = write_config(
            tmp_path, sim.url, settle=0.1, window=0.1, email=email, target_extra="read_timeout_seconds = 1\n"
        )
        config = load_config(ini, environ={})
        _drop_batch(tmp_path / "drop")

        crashed = _run(ini, point)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
        assert f"failpoint {point}:1" in crashed.stderr
        finished = _run(ini, None)
        expected = _expected(point)
        assert finished.returncode == (0 if set(expected.values()) == {"SUCCESS"} else 1), finished.stderr[-2000:]
        uploads = sim.uploads_snapshot()

    # Sent at most once each, in dependency order (counted at the simulator).
    assert [u.slug for u in uploads] == [s for s in IN_ORDER if s != "membership" or expected["enrol.txt"] != "HELD"]
    assert len({u.sha256 for u in uploads}) == len(uploads)
    # Every file in exactly one place, none left in processing/.
    assert not list(config.agent.processing_dir.iterdir())
    archived, failed = _copies(config.agent.archive_dir), _copies(config.agent.failed_dir)
    assert archived + failed == Counter(list(FILES))
    assert {name for name, status in expected.items() if status == "SUCCESS"} == set(archived)
    # Every report exactly once, and one summary.
    subjects = [str(m["Subject"]) for m in smtp.parsed()]
    for name, status in expected.items():
        assert [s for s in subjects if f" {name} " in s] == [f"[feed-agent] {status} {name} — {FILES[name]}/store"]
    assert len([s for s in subjects if s.startswith("[feed-agent] Summary: 3 files")]) == 1, subjects
    assert len(subjects) == 4, subjects
    _journal_matches_folders(config, expected)


def _journal_matches_folders(config: Config, expected: dict[str, str]) -> None:
    with Journal(config.agent.journal_path) as journal:
        batches = journal.recent_batches()
        assert len(batches) == 1 and batches[0].reported_at is not None and batches[0].files == 3
        records = journal.batch_files(batches[0].id)
    claimed = [r for r in records if r.claimed_at is not None]
    assert sorted(r.name for r in claimed) == sorted(FILES)
    for record in claimed:
        assert record.status == expected[record.name], record
        assert record.reported_at is not None, record
        place = Path(record.current_path or "")
        assert place.is_file(), record
        folder = config.agent.archive_dir if record.state is FileState.ARCHIVED else config.agent.failed_dir
        assert place.parent == folder, record
