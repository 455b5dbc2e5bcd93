"""Exactly once, in order, through any crash (issue 14's must-show).

A 3-file batch (memberships, courses, people, dropped in that order) is run by a real `feed-agent
run` process against the Learn simulator over HTTP, reporting to a real SMTP server (aiosmtpd), once
per failpoint (and at a later pass of some, e.g. between the second and third claims): the process
SIGKILLs itself right after that step, a second `run` without the failpoint finishes. Then, counted
from the other side: every file is in one place (archive/, or failed/ when UNCONFIRMED or held by
it), none in processing/; the simulator received each file at most once, in dependency order; every
report and the summary arrived exactly once; and the journal says where each file is.

The random-kill trial: `watch` is killed again and again at random moments (after a random number
of log lines) while batches arrive, then left to finish: nothing lost, nothing uploaded twice.
KILL_TRIAL_ROUNDS sets the number of kills (10 here; the issue's trial is 50).

Where the crash hit after the whole body went out (body-sent, receipt-received) the file is not sent
again but UNCONFIRMED; the failed/ failpoints need a file that goes to failed/, so there Learn keeps
the answer to the first upload back (the simulator's withhold-answers fault): UNCONFIRMED too.
"""

from __future__ import annotations

import os
import random
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
from tests.support.cli import spawn
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
    write_flatfile,
)
from tests.support.pipeline import drop_standard_files
from tests.support.smtp import SmtpServer
from tests.support.waiting import wait_for

ANSWER_LOST = {"body-sent", "receipt-received"}  # the crash came after the whole body went out
NEEDS_A_FAILED_FILE = {"fail-renamed", "fail-journaled"}
FILES = {"enrol.txt": "membership", "courses.txt": "course", "users.txt": "person"}  # dropped in this order
IN_ORDER = ["person", "course", "membership"]


def _drop_batch(drop: Path) -> None:
    """Memberships first, people last (mtimes too), so only the agent's ordering can get it right."""
    written = list(drop_standard_files(drop).values())  # memberships, courses, people
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


# Later passes of some steps: the crash between two files' claims, after the second upload, and so on.
LATER_PASSES = ("claim-renamed:2", "claim-journaled:3", "body-sent:2", "receipt-journaled:2", "archive-renamed:2")


def _expected(point: str) -> dict[str, str]:
    """Where each file ends: archive/ when delivered, failed/ when UNCONFIRMED or held by that file."""
    name, _, nth = point.partition(":")
    if name in ANSWER_LOST and nth == "2":  # the second upload (courses) lost its answer
        return {"users.txt": "SUCCESS", "courses.txt": "UNCONFIRMED", "enrol.txt": "HELD"}
    if name in ANSWER_LOST or name in NEEDS_A_FAILED_FILE:
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
@pytest.mark.parametrize("point", [*failpoints.NAMES, *LATER_PASSES])
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
        assert f"failpoint {point if ':' in point else point + ':1'}" in crashed.stderr
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


KILL_TRIAL_ROUNDS = int(os.environ.get("KILL_TRIAL_ROUNDS", "10"))


def _round_files(drop: Path, number: int) -> list[Path]:
    """A batch whose three files differ from every other round's (so a double upload shows)."""
    return [
        write_flatfile(drop / f"enrol-{number}.txt", MEMBERSHIP_HEADER, membership_rows(2 + number, courses=1)),
        write_flatfile(drop / f"courses-{number}.txt", COURSE_HEADER, course_rows(1 + number)),
        write_flatfile(drop / f"users-{number}.txt", PEOPLE_HEADER, person_rows(2 + number)),
    ]


def _settled(config: Config) -> bool:
    if any(config.route().watch.iterdir()) or any(config.agent.processing_dir.iterdir()):
        return False
    with Journal(config.agent.journal_path) as journal:
        return not journal.in_flight() and not journal.unreported_batches()


@pytest.mark.timeout(900)
def test_random_kills_during_watch_lose_nothing_and_send_nothing_twice(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    smtp = smtp_server()
    email = f"transport = smtp\nhost = 127.0.0.1\nport = {smtp.port}\nsecurity = none\nto = admins@example.edu\n"
    chance = random.Random(14)
    log = tmp_path / "agent.log"
    with LearnSimulator(rows_per_second=200.0, start_delay=0) as sim:
        ini = write_config(tmp_path, sim.url, settle=0.1, window=0.1, email=email)
        config = load_config(ini, environ={})
        dropped: list[Path] = []
        for number in range(KILL_TRIAL_ROUNDS):
            dropped += _round_files(config.route().watch, number)
            kill_at = (len(log.read_bytes().splitlines()) if log.exists() else 0) + chance.randint(1, 40)
            process = spawn(ini, "watch", log_path=log)
            try:
                wait_for(
                    lambda at=kill_at: len(log.read_bytes().splitlines()) >= at or _settled(config),  # type: ignore[misc]
                    what=f"log line {kill_at} of round {number}",
                )
                process.send_signal(signal.SIGKILL)
                process.wait(30)
            finally:
                if process.poll() is None:
                    process.kill()
        final = spawn(ini, "watch", log_path=log)
        try:
            wait_for(lambda: _settled(config), what="every batch finished after the last kill", timeout=120)
            final.send_signal(signal.SIGTERM)
            assert final.wait(30) == 0
        finally:
            if final.poll() is None:
                final.kill()
        uploads = sim.uploads_snapshot()

    archived, failed = _copies_by_name(config.agent.archive_dir), _copies_by_name(config.agent.failed_dir)
    assert archived + failed == Counter(p.name for p in dropped)  # 0 lost, each in one place
    assert len({u.sha256 for u in uploads}) == len(uploads)  # 0 doubled, counted at the simulator
    with Journal(config.agent.journal_path) as journal:
        unsent = {r.name: r.state for r in journal.recent_files(10_000) if r.claimed_at and r.name in failed}
    assert set(unsent.values()) <= {FileState.UNCONFIRMED, FileState.HELD}, unsent  # killed after a full body
    subjects = " ".join(str(m["Subject"]) for m in smtp.parsed())
    assert all(f" {p.name} " in subjects for p in dropped)  # every file reported


def _copies_by_name(folder: Path) -> Counter[str]:
    """Files per original name (`users-3.<stamp>.txt` -> `users-3.txt`), reason files aside."""
    found: Counter[str] = Counter()
    for path in folder.iterdir() if folder.exists() else []:
        if not path.name.endswith(".reason.txt"):
            found[f"{path.name.split('.')[0]}.txt"] += 1
    return found
