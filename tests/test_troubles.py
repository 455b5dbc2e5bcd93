"""Failure episodes: back-off as announced, one log line per attempt, one email per episode and per clearing."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from agent.errors import JournalError
from agent.journal import Journal
from agent.retry import RetryPolicy
from agent.troubles import Troubles
from tests.support.clock import FakeClock
from tests.support.recording import RecordingReporter

POLICY = RetryPolicy(attempts=2**31, first_delay=5.0, cap=300.0)


def unwritable(path: Path) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal(tmp_path / "journal.sqlite3") as opened:
        yield opened


def test_an_episode_waits_as_announced_and_is_emailed_once(
    journal: Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, reporter = FakeClock(), RecordingReporter()
    troubles = Troubles(journal, reporter, policy=POLICY, clock=clock)
    drop = tmp_path / "drop"
    key = f"drop:{drop}"
    caplog.set_level(logging.INFO)

    pauses = []
    for _ in range(8):
        assert troubles.due(key)
        pauses.append(troubles.failed(key, unwritable(drop / "users.txt"), folder=drop))
        clock.advance(pauses[-1] - 0.01)
        assert not troubles.due(key)  # not a moment before the pause the log announced
        clock.advance(0.01)

    assert pauses == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]  # doubling, capped
    lines = [r for r in caplog.records if r.name == "agent.troubles"]
    assert len(lines) == 8 and not any(r.exc_info for r in lines)  # one line each, no traceback
    assert "next try in 2 min 40 s" in lines[5].getMessage()
    assert len(reporter.troubles) == 1  # one email for the whole episode
    notice = reporter.troubles[0]
    assert notice.cleared_at is None and notice.attempts == 1
    assert str(drop) in notice.advice and "permission" in notice.advice
    (stored,) = journal.troubles()
    assert stored.key == key and stored.attempts == 8 and stored.alerted_at is not None

    troubles.cleared(key)
    troubles.cleared(key)  # working on: nothing more to say
    assert len(reporter.troubles) == 2
    cleared = reporter.troubles[1]
    assert cleared.cleared_at is not None and cleared.attempts == 8
    assert journal.troubles() == []  # no row left behind
    assert troubles.due(key)


def test_an_unforeseen_error_shows_its_traceback_once(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    troubles = Troubles(journal, RecordingReporter(), policy=POLICY, clock=clock)
    for _ in range(3):
        troubles.failed("recovery", KeyError("batch 7"))
        clock.advance(400)
    lines = [r for r in caplog.records if r.name == "agent.troubles"]
    assert [bool(r.exc_info) for r in lines] == [True, False, False]
    assert "KeyError" in lines[2].getMessage()


def test_a_restart_neither_emails_again_nor_forgets_the_clearing(journal: Journal, tmp_path: Path) -> None:
    first_reporter = RecordingReporter()
    first = Troubles(journal, first_reporter, policy=POLICY, clock=FakeClock())
    first.failed("archive", unwritable(tmp_path / "archive"), folder=tmp_path / "archive")
    assert len(first_reporter.troubles) == 1

    reporter = RecordingReporter()  # a new process on the same journal
    again = Troubles(journal, reporter, policy=POLICY, clock=FakeClock())
    assert again.failing("archive") and again.due("archive")  # tried at once after a restart
    again.failed("archive", unwritable(tmp_path / "archive"), folder=tmp_path / "archive")
    assert reporter.troubles == []  # the start was already told
    again.cleared("archive")
    assert [n.cleared_at is not None for n in reporter.troubles] == [True]
    assert reporter.troubles[0].attempts == 2


def test_told_elsewhere_means_no_start_email_but_a_clearing_one(journal: Journal, tmp_path: Path) -> None:
    reporter = RecordingReporter()
    troubles = Troubles(journal, reporter, policy=POLICY, clock=FakeClock())
    troubles.failed("archive", unwritable(tmp_path / "archive"), told=True)
    assert reporter.troubles == []
    troubles.cleared("archive")
    assert len(reporter.troubles) == 1 and reporter.troubles[0].cleared_at is not None


class FullJournal(Journal):
    """A journal on a full disk: every episode write fails as SQLite then says."""

    def trouble_failed(self, key, problem, at):  # type: ignore[no-untyped-def]
        raise JournalError("the disk holding work_dir is full")


def test_a_full_disk_still_backs_off_and_emails_once(tmp_path: Path) -> None:
    reporter, clock = RecordingReporter(), FakeClock()
    with FullJournal(tmp_path / "journal.sqlite3") as journal:
        troubles = Troubles(journal, reporter, policy=POLICY, clock=clock)
        full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "processing" / "users.txt"))
        delays = []
        for _ in range(3):
            delays.append(troubles.failed(f"drop:{tmp_path}", full, folder=tmp_path))
            clock.advance(delays[-1])
    assert delays == [5.0, 10.0, 20.0]  # counted in memory
    assert len(reporter.troubles) == 1
    assert "Free some space" in reporter.troubles[0].advice


def test_a_new_process_names_only_what_failed_in_it_and_forgets_a_step_that_is_gone(
    journal: Journal, tmp_path: Path
) -> None:
    first = Troubles(journal, RecordingReporter(), policy=POLICY, clock=FakeClock())
    first.failed("drop:/srv/old-route", unwritable(tmp_path), folder=tmp_path)
    first.failed("archive", unwritable(tmp_path), folder=tmp_path)

    reporter = RecordingReporter()
    tonight = Troubles(journal, reporter, policy=POLICY, clock=FakeClock())  # e.g. the next `run`
    assert sorted(e.key for e in tonight.open_episodes()) == ["archive", "drop:/srv/old-route"]
    assert tonight.open_episodes(failed_here=True) == []  # nothing failed tonight yet
    tonight.failed("archive", unwritable(tmp_path), folder=tmp_path)
    assert [e.key for e in tonight.open_episodes(failed_here=True)] == ["archive"]

    tonight.forget("drop:/srv/old-route")  # its route was taken out of the configuration
    assert [t.key for t in journal.troubles()] == ["archive"] and reporter.troubles == []


def test_a_step_nothing_waits_on_rests_but_its_episode_stays_open(journal: Journal, tmp_path: Path) -> None:
    troubles = Troubles(journal, RecordingReporter(), policy=POLICY, clock=FakeClock())
    troubles.failed("drop:/srv/sis", unwritable(tmp_path), folder=tmp_path)
    assert troubles.retrying() and not troubles.due("drop:/srv/sis")
    troubles.rest("drop:/srv/sis")  # the refused files were taken away by hand
    assert not troubles.retrying() and troubles.due("drop:/srv/sis")  # the next file is tried at once
    assert troubles.failing("drop:/srv/sis")  # not resolved until a claim works
