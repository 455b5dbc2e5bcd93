"""FolderWatcher with real watchdog observers on real tmp folders.

Every wait is a condition polled up to a generous timeout; the only timing assertions are lower
bounds that follow from the readiness rule ("not ready before the last write + settle").
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agent.mounts import choose_observer
from agent.watcher import Candidate, FolderWatcher
from tests.support.waiting import TIMEOUT, wait_for

SETTLE = 0.3

MakeWatcher = Callable[..., FolderWatcher]


def candidate(watcher: FolderWatcher, path: Path) -> Candidate | None:
    return next((c for c in watcher.pending() if c.path == path), None)


def ready_candidate(watcher: FolderWatcher, path: Path) -> Candidate | None:
    found = candidate(watcher, path)
    return found if found is not None and found.ready else None


class Unsupported:
    """Collects on_unsupported calls (they arrive on the watcher's threads)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Path, str]] = []
        self._lock = threading.Lock()

    def __call__(self, route: str, path: Path, reason: str) -> None:
        with self._lock:
            self.calls.append((route, path, reason))

    def paths(self) -> list[Path]:
        with self._lock:
            return [path for _, path, _ in self.calls]


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def sibling(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.fixture
def make_watcher() -> Iterator[MakeWatcher]:
    """Builds watchers (native observer, no periodic rescan by default) and always stops them."""
    made: list[FolderWatcher] = []

    def make(folders: dict[str, Path], **options: Any) -> FolderWatcher:
        options.setdefault("settle_seconds", SETTLE)
        options.setdefault("rescan_seconds", 3600.0)
        options.setdefault("observer", "native")
        watcher = FolderWatcher(folders, **options)
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


def count_scans(watcher: FolderWatcher, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record each completed full scan (the checker thread calls `self.scan()`)."""
    done: list[float] = []
    original = watcher.scan

    def counting_scan() -> None:
        original()
        done.append(time.monotonic())

    monkeypatch.setattr(watcher, "scan", counting_scan)
    return done


# ----------------------------------------------------------------------------------------------
# Readiness


class ReadyReports:
    """Records, at each on_change, whether one path was ready (on_change runs on the watcher's threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.watcher: FolderWatcher | None = None
        self.reports: list[tuple[float, bool]] = []
        self.ready = threading.Event()

    def __call__(self) -> None:
        assert self.watcher is not None
        found = candidate(self.watcher, self.path)
        is_ready = found is not None and found.ready
        self.reports.append((time.monotonic(), is_ready))
        if is_ready:
            self.ready.set()

    def ready_before(self, moment: float) -> bool:
        return any(is_ready for when, is_ready in self.reports if when < moment)


def saw_write(watcher: FolderWatcher, path: Path, before: float) -> Candidate | None:
    """The candidate once the watcher has seen a change made after `before` (its clock restarted)."""
    found = candidate(watcher, path)
    return found if found is not None and found.last_change >= before else None


def still_for(watcher: FolderWatcher, path: Path, seconds: float) -> bool:
    found = candidate(watcher, path)
    return found is not None and time.monotonic() - found.last_change > seconds


def test_writer_pausing_longer_than_settle_is_ready_only_after_it_closes(make_watcher: MakeWatcher, drop: Path) -> None:
    path = drop / "person.txt"
    reports = ReadyReports(path)
    watcher = reports.watcher = make_watcher({"r": drop}, on_change=reports)
    watcher.start()
    chunk = b"EXTERNAL_PERSON_KEY|USER_ID\n" * 2000
    with path.open("wb") as out:
        for _ in range(3):  # a header, then rows after "long queries"
            before = time.monotonic()  # read first: the watcher may see the write before we could
            out.write(chunk)
            out.flush()
            wait_for(partial(saw_write, watcher, path, before), "the watcher to see the write")
            wait_for(partial(still_for, watcher, path, 2 * SETTLE), "a pause longer than settle_seconds")
            watcher.refresh()  # a synchronous check: without the writer's open file it would say ready
            found = candidate(watcher, path)
            assert found is not None and not found.ready, "ready while its writer still had it open"
        still_open = time.monotonic()  # read before the close: a ready report may follow it at once

    assert reports.ready.wait(TIMEOUT), "ready once the writer closed it"
    assert not reports.ready_before(still_open), "on_change never said ready while the file was open"
    ready = wait_for(lambda: ready_candidate(watcher, path), "the finished file to be ready")
    assert ready.path.stat().st_size == 3 * len(chunk)
    assert ready.route == "r" and ready.marker is None and ready.first_seen <= ready.last_change


def test_an_empty_file_opened_by_its_creator_is_held_until_written_and_closed(
    make_watcher: MakeWatcher, drop: Path
) -> None:
    watcher = make_watcher({"r": drop})
    watcher.start()
    path = drop / "course.txt"
    with path.open("wb") as out:  # "created, opened": the export now runs its query
        (drop / "later.txt").write_text("x")  # its events queue behind ours: a sign ours were handled
        wait_for(lambda: candidate(watcher, drop / "later.txt"), "the next file's event")
        wait_for(partial(still_for, watcher, path, 2 * SETTLE), "the empty file to be still for a while")
        watcher.refresh()
        found = candidate(watcher, path)
        assert found is not None and not found.ready, "an empty file its creator still has open"
        out.write(b"EXTERNAL_COURSE_KEY|COURSE_ID\nc1|c1\n")
    wait_for(lambda: ready_candidate(watcher, path), "the file to be ready once written and closed")


def test_a_reader_keeping_the_file_open_does_not_hold_it_back(
    make_watcher: MakeWatcher, drop: Path, sibling: Path
) -> None:
    watcher = make_watcher({"r": drop})
    watcher.start()
    outside = sibling / "term.txt"
    outside.write_text("EXTERNAL_TERM_KEY|NAME\nt1|Term one\n")
    path = drop / "term.txt"
    os.rename(outside, path)
    with path.open("rb") as reader:  # an antivirus, a backup, `feed-agent inspect`
        reader.read()
        wait_for(lambda: ready_candidate(watcher, path), "ready although a reader has it open")


def test_lost_events_hand_a_held_file_back_to_the_settle_rule(make_watcher: MakeWatcher, drop: Path) -> None:
    watcher = make_watcher({"r": drop})
    watcher.start()
    path = drop / "person.txt"
    with path.open("wb") as out:
        before = time.monotonic()
        out.write(b"EXTERNAL_PERSON_KEY|USER_ID\n")
        out.flush()
        wait_for(partial(saw_write, watcher, path, before), "the write to be seen")
        wait_for(partial(still_for, watcher, path, 2 * SETTLE), "a pause longer than settle_seconds")
        watcher.refresh()
        held = candidate(watcher, path)
        assert held is not None and not held.ready, "held: its writer has it open"
        # An overflow may have swallowed the close: open state is forgotten, the clock decides.
        logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; events were lost")
        wait_for(lambda: ready_candidate(watcher, path), "the still file to be ready while still open")


def test_polling_sees_no_opens_so_an_open_but_still_file_settles_by_the_clock(
    make_watcher: MakeWatcher, drop: Path
) -> None:
    """The documented limit: network shares have no open/close events (settle_seconds must cover
    a writer's pauses there, or the SIS must use ready markers or rename files in)."""
    watcher = make_watcher({"r": drop}, observer="polling")
    watcher.start()
    path = drop / "person.txt"
    with path.open("wb") as out:
        out.write(b"EXTERNAL_PERSON_KEY|USER_ID\n")
        out.flush()
        wait_for(lambda: ready_candidate(watcher, path), "the polled file to be ready while still open")


def test_readiness_is_reported_at_its_deadline_without_any_periodic_tick(make_watcher: MakeWatcher, drop: Path) -> None:
    path = drop / "node.txt"
    reports = ReadyReports(path)
    # Health checks hourly, no rescans: only the settle deadline can wake the checker.
    watcher = reports.watcher = make_watcher({"r": drop}, on_change=reports, check_interval=3600.0)
    watcher.start()
    before = time.monotonic()
    path.write_text("EXTERNAL_NODE_KEY|NAME\nn1|Node one\n")
    assert reports.ready.wait(TIMEOUT), "on_change reported the file ready"
    assert not reports.ready_before(before + SETTLE), "never before the write + settle_seconds"


def test_rename_in_from_sibling_folder_and_part_file_renamed_inside(
    make_watcher: MakeWatcher, drop: Path, sibling: Path
) -> None:
    woke = threading.Event()
    watcher = make_watcher({"r": drop}, ignore=("*.part",), on_change=woke.set)
    watcher.start()
    assert watcher.pending() == []

    outside = sibling / "course.txt"
    outside.write_text("EXTERNAL_COURSE_KEY|COURSE_ID\nc1|c1\n")
    os.rename(outside, drop / "course.txt")
    part_file = drop / "term.txt.part"
    part_file.write_text("EXTERNAL_TERM_KEY|NAME\n")
    assert candidate(watcher, part_file) is None
    os.rename(part_file, drop / "term.txt")

    # No rescan is due for an hour: only the observer's events can have found these.
    for name in ("course.txt", "term.txt"):
        found = wait_for(partial(ready_candidate, watcher, drop / name), f"{name} to be ready")
        assert found.route == "r"
    assert woke.is_set()
    assert {c.path.name for c in watcher.pending()} == {"course.txt", "term.txt"}


def test_shutil_copy_of_a_large_file_is_ready_only_when_complete(
    make_watcher: MakeWatcher, drop: Path, sibling: Path
) -> None:
    source = sibling / "membership.txt"
    block = b"EXTERNAL_COURSE_KEY|EXTERNAL_PERSON_KEY|ROLE\n" * 1024
    with source.open("wb") as out:
        for _ in range(400):  # ~18 MB
            out.write(block)
    watcher = make_watcher({"r": drop})
    watcher.start()

    copied = Path(shutil.copy(source, drop / "membership.txt"))
    ready = wait_for(lambda: ready_candidate(watcher, copied), "the copied file to be ready")
    assert ready.path.stat().st_size == source.stat().st_size


def test_file_deleted_mid_write_leaves_no_candidate_and_its_recreation_is_new(
    make_watcher: MakeWatcher, drop: Path
) -> None:
    watcher = make_watcher({"r": drop})
    watcher.start()
    path = drop / "node.txt"
    with path.open("wb") as out:
        out.write(b"EXTERNAL_NODE_KEY|NAME\n")
        out.flush()
        first = wait_for(lambda: candidate(watcher, path), "the file being written to be found")
        path.unlink()
        for _ in range(3):  # events keep arriving for the deleted file
            out.write(b"n1|Node one\n")
            out.flush()
    wait_for(lambda: candidate(watcher, path) is None, "the deleted file to be dropped")
    watcher.scan()
    watcher.refresh()
    assert watcher.pending() == []

    path.write_text("EXTERNAL_NODE_KEY|NAME\nn2|Node two\n")
    again = wait_for(lambda: candidate(watcher, path), "the recreated file to be found")
    assert again.first_seen > first.first_seen
    wait_for(lambda: ready_candidate(watcher, path), "the recreated file to be ready")


def test_two_thousand_files_created_at_once_are_all_found(make_watcher: MakeWatcher, drop: Path) -> None:
    watcher = make_watcher({"r": drop}, observer="native", rescan_seconds=1.0)
    watcher.start()
    assert watcher.observer_kind("r") == "native"
    expected = {drop / f"user_{i:04d}.txt" for i in range(2000)}
    # Another process writes them, as the SIS would (and as fast as it can: the inotify queue may
    # overflow, which is what the rescan is for).
    writer = (
        "import sys, pathlib\n"
        "for i in range(2000):\n"
        "    (pathlib.Path(sys.argv[1]) / f'user_{i:04d}.txt').write_bytes(b'EXTERNAL_PERSON_KEY\\n')\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(drop)], check=True, timeout=120)

    def all_ready() -> bool:
        pending = watcher.pending("r")
        return len(pending) == len(expected) and all(c.ready for c in pending)

    wait_for(all_ready, "all 2,000 files to be ready", timeout=60)
    assert {c.path for c in watcher.pending()} == expected


def test_file_moved_back_with_years_old_mtime_settles_by_our_clock(
    make_watcher: MakeWatcher, drop: Path, sibling: Path
) -> None:
    settle = 0.6
    watcher = make_watcher({"r": drop}, settle_seconds=settle)
    watcher.start()
    archived = sibling / "person.txt"
    archived.write_text("EXTERNAL_PERSON_KEY|USER_ID\np1|p1\n")
    old = time.time() - 5 * 365 * 24 * 3600
    os.utime(archived, (old, old))

    moved_at = time.monotonic()
    target = drop / "person.txt"
    os.rename(archived, target)
    found = wait_for(lambda: candidate(watcher, target), "the reprocessed file to be found")
    assert found.first_seen >= moved_at
    assert abs(found.arrived_at.timestamp() - time.time()) < 3600, "arrival must be our clock, not mtime"
    ready = wait_for(lambda: ready_candidate(watcher, target), "the reprocessed file to be ready")
    assert time.monotonic() - moved_at >= settle
    assert ready.path.stat().st_mtime < time.time() - 365 * 24 * 3600


def test_ready_marker_gates_readiness_and_is_exposed(make_watcher: MakeWatcher, drop: Path) -> None:
    unsupported = Unsupported()
    watcher = make_watcher({"r": drop}, ready_suffix=".done", on_unsupported=unsupported)
    watcher.start()
    data = drop / "course.txt"
    data.write_text("EXTERNAL_COURSE_KEY|COURSE_ID\n")
    found = wait_for(lambda: candidate(watcher, data), "the data file to be found")
    assert found.marker == drop / "course.txt.done"

    # Long past settle_seconds of stillness, it is still not ready: only the marker counts.
    wait_for(lambda: time.monotonic() - found.last_change > 3 * SETTLE, "the file to be still for a while")
    watcher.refresh()
    still = candidate(watcher, data)
    assert still is not None and not still.ready

    (drop / "course.txt.done").touch()
    ready = wait_for(lambda: ready_candidate(watcher, data), "the file to be ready once its marker exists")
    assert ready.marker == drop / "course.txt.done" and ready.marker.exists()
    watcher.scan()
    assert [c.path for c in watcher.pending()] == [data], "the marker itself is never a candidate"
    assert unsupported.paths() == []


def test_ignore_patterns_reason_files_and_ignored_symlinks_are_never_touched(
    make_watcher: MakeWatcher, drop: Path, sibling: Path
) -> None:
    unsupported = Unsupported()
    (drop / ".hidden").write_text("x")
    (drop / "upload.tmp").write_text("x")
    (drop / "person.txt.reason.txt").write_text("rejected because…")
    (drop / "link.tmp").symlink_to(sibling)
    (drop / ".cache").mkdir()
    watcher = make_watcher({"r": drop}, ignore=(".*", "*.tmp"), on_unsupported=unsupported)
    watcher.start()
    (drop / "later.tmp").write_text("x")
    (drop / "real.txt").write_text("EXTERNAL_TERM_KEY|NAME\n")

    wait_for(lambda: ready_candidate(watcher, drop / "real.txt"), "the one real file to be ready")
    watcher.scan()
    watcher.refresh()
    assert [c.path.name for c in watcher.pending()] == ["real.txt"]
    assert unsupported.paths() == []


def test_symlink_subfolder_and_fifo_are_reported_once_and_never_followed(
    make_watcher: MakeWatcher, drop: Path, sibling: Path
) -> None:
    unsupported = Unsupported()
    target = sibling / "real.txt"
    target.write_text("EXTERNAL_PERSON_KEY|USER_ID\n")
    link = drop / "person.txt"
    link.symlink_to(target)  # present at start: found by the initial scan
    watcher = make_watcher({"r": drop}, on_unsupported=unsupported)
    watcher.start()
    sub = drop / "more-files"
    sub.mkdir()  # created later: found through events
    fifo = drop / "pipe.txt"
    os.mkfifo(fifo)

    wait_for(lambda: set(unsupported.paths()) == {link, sub, fifo}, "all three to be reported")
    watcher.scan()
    watcher.refresh()
    assert sorted(unsupported.paths()) == sorted([link, sub, fifo]), "each is reported exactly once"
    assert watcher.pending() == []
    reasons = {path.name: reason for _, path, reason in unsupported.calls}
    assert "symbolic link" in reasons["person.txt"]
    assert "folder" in reasons["more-files"]
    assert "named pipe" in reasons["pipe.txt"]
    assert all(route == "r" for route, _, _ in unsupported.calls)

    # Once the daemon moves the folder away, a regular file of that name is an ordinary candidate.
    sub.rmdir()
    sub.write_text("EXTERNAL_NODE_KEY|NAME\n")
    wait_for(lambda: ready_candidate(watcher, sub), "the regular file that replaced the folder")


def test_polling_observer_finds_new_files_and_drops_deleted_ones(make_watcher: MakeWatcher, drop: Path) -> None:
    watcher = make_watcher({"r": drop}, observer="polling")
    watcher.start()
    assert watcher.observer_kind("r") == "polling"
    path = drop / "term.txt"
    path.write_text("EXTERNAL_TERM_KEY|NAME\n")
    wait_for(lambda: ready_candidate(watcher, path), "the polled file to be ready")
    path.unlink()
    wait_for(lambda: candidate(watcher, path) is None, "the deleted file to be forgotten")


def test_polling_sees_a_ready_marker_in_its_listing(make_watcher: MakeWatcher, drop: Path) -> None:
    watcher = make_watcher({"r": drop}, observer="polling", ready_suffix=".done")
    watcher.start()
    path = drop / "course.txt"
    path.write_text("EXTERNAL_COURSE_KEY|COURSE_ID\n")
    wait_for(lambda: candidate(watcher, path), "the file to be found")
    (drop / "course.txt.done").touch()
    ready = wait_for(lambda: ready_candidate(watcher, path), "the file to be ready once the poller lists its marker")
    assert ready.marker == drop / "course.txt.done"


def test_polling_logs_an_unreadable_folder_once_per_outage(
    make_watcher: MakeWatcher, drop: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = make_watcher({"r": drop}, observer="polling")
    polls: list[float] = []
    original = watcher._scan_route

    def counting(route: Any, *, polling: bool = False) -> None:
        original(route, polling=polling)
        if polling:
            polls.append(time.monotonic())

    monkeypatch.setattr(watcher, "_scan_route", counting)
    with caplog.at_level(logging.INFO, logger="agent.watcher"):
        watcher.start()
        shutil.rmtree(drop)  # the share went away
        gone = len(polls)
        wait_for(lambda: len(polls) >= gone + 4, "several polls of the missing folder")
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and str(drop) in r.getMessage()]
        assert len(errors) == 1, "one error per outage, not one per poll"
        drop.mkdir()
        (drop / "back.txt").write_text("EXTERNAL_TERM_KEY|NAME\n")
        wait_for(lambda: ready_candidate(watcher, drop / "back.txt"), "files once the folder is back")
    assert any("readable again" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------------------------
# take(), wait_until_settled(), scan without start


def test_take_forgets_until_the_file_leaves_and_comes_back(
    make_watcher: MakeWatcher, drop: Path, sibling: Path
) -> None:
    watcher = make_watcher({"r": drop})
    watcher.start()
    path = drop / "person.txt"
    path.write_text("EXTERNAL_PERSON_KEY|USER_ID\n")
    first = wait_for(lambda: ready_candidate(watcher, path), "the file to be ready")

    watcher.take([path])
    assert candidate(watcher, path) is None
    watcher.scan()  # the daemon has not moved it yet: a rescan must not offer it again
    watcher.refresh()
    assert candidate(watcher, path) is None

    archived = sibling / "person.txt"
    os.rename(path, archived)  # the daemon's claim
    os.rename(archived, path)  # an admin moves it back to reprocess it
    again = wait_for(lambda: candidate(watcher, path), "the moved-back file to be a new candidate")
    assert again.first_seen > first.first_seen
    wait_for(lambda: ready_candidate(watcher, path), "the moved-back file to be ready")
    watcher.take([drop / "not-known.txt"])  # unknown paths are ignored


def test_wait_until_settled_without_start_and_scan_is_synchronous(
    make_watcher: MakeWatcher, drop: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for name in ("a.txt", "b.txt"):
        (drop / name).write_text("EXTERNAL_TERM_KEY|NAME\n")
    (other / "c.txt").write_text("EXTERNAL_NODE_KEY|NAME\n")
    watcher = make_watcher({"main": drop, "second": other})

    watcher.wait_until_settled(timeout=TIMEOUT)
    pending = watcher.pending()
    assert [c.path.name for c in pending] == ["a.txt", "b.txt", "c.txt"]
    assert all(c.ready for c in pending)
    assert [c.path.name for c in watcher.pending("second")] == ["c.txt"]
    assert pending[0].first_seen <= pending[-1].first_seen


def test_wait_until_settled_gives_up_at_the_timeout_for_a_missing_marker(make_watcher: MakeWatcher, drop: Path) -> None:
    (drop / "a.txt").write_text("EXTERNAL_TERM_KEY|NAME\n")
    watcher = make_watcher({"r": drop}, ready_suffix=".done")
    watcher.wait_until_settled(timeout=0.3)
    only = watcher.pending()
    assert len(only) == 1 and not only[0].ready


# ----------------------------------------------------------------------------------------------
# Self-health


def _crash_dispatcher(observer: Any, drop: Path) -> None:
    def explode(_queue: object) -> None:
        raise RuntimeError("simulated crash of the observer thread")

    observer.dispatch_events = explode  # used from its next loop turn
    (drop / "trigger.txt").write_text("x")  # finishes the dispatcher's current blocking turn


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("how", ["crash", "stop", "emitter"])
def test_dead_observer_is_restarted_and_sees_new_files(
    make_watcher: MakeWatcher, drop: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    watcher = make_watcher({"r": drop})
    scans = count_scans(watcher, monkeypatch)
    watcher.start()
    old = watcher._routes["r"].observer
    assert old is not None and old.is_alive()
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the simulated crash is expected

    if how == "crash":
        _crash_dispatcher(old, drop)
    elif how == "stop":
        old.stop()
    else:
        next(iter(old.emitters)).stop()

    def restarted() -> bool:
        current = watcher._routes["r"].observer
        return watcher.restarts == 1 and current is not None and current is not old and current.is_alive()

    wait_for(restarted, "the observer to be restarted")
    wait_for(lambda: len(scans) >= 1, "the rescan that follows a restart")
    # The next periodic rescan is an hour away: only the new observer can find this file.
    path = drop / "after-restart.txt"
    path.write_text("EXTERNAL_PERSON_KEY|USER_ID\n")
    wait_for(lambda: ready_candidate(watcher, path), "the new observer to report a new file")
    assert not old.is_alive()


def test_missing_folder_is_logged_and_retried_on_each_rescan(
    make_watcher: MakeWatcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    late = tmp_path / "share-not-mounted-yet"
    watcher = make_watcher({"r": late}, rescan_seconds=0.3)
    with caplog.at_level(logging.ERROR, logger="agent.watcher"):
        watcher.start()
        wait_for(
            lambda: any(str(late) in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR),
            "an error naming the missing folder",
        )
    assert not late.exists(), "the watcher must not create the folder"

    late.mkdir()
    (late / "present.txt").write_text("EXTERNAL_TERM_KEY|NAME\n")
    wait_for(lambda: ready_candidate(watcher, late / "present.txt"), "the file found once the folder exists")
    wait_for(lambda: watcher._routes["r"].observer is not None, "an observer on the folder once it exists")


def test_inotify_overflow_warning_triggers_an_immediate_rescan(
    make_watcher: MakeWatcher, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = make_watcher({"r": drop})
    scans = count_scans(watcher, monkeypatch)
    watcher.start()
    before = len(scans)
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; filesystem events were lost")
    wait_for(lambda: len(scans) > before, "a rescan after the overflow warning")


def test_auto_mode_stop_is_idempotent_and_on_change_is_called(make_watcher: MakeWatcher, drop: Path) -> None:
    woke = threading.Event()
    watcher = make_watcher({"r": drop}, observer="auto", on_change=woke.set)
    watcher.stop()  # never started: nothing to do
    watcher.start()
    mounts = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
    assert watcher.observer_kind("r") == choose_observer(drop, mounts)
    (drop / "x.txt").write_text("x")
    assert woke.wait(TIMEOUT)
    watcher.stop()
    watcher.stop()
    assert watcher._routes["r"].observer is None


def test_constructor_rejects_bad_settings(drop: Path) -> None:
    with pytest.raises(ValueError, match="observer"):
        FolderWatcher({"r": drop}, settle_seconds=1, rescan_seconds=1, observer="inotify")
    with pytest.raises(ValueError, match="same folder"):
        FolderWatcher({"a": drop, "b": drop / "."}, settle_seconds=1, rescan_seconds=1)
    assert FolderWatcher({"r": drop}, settle_seconds=10, rescan_seconds=60).check_interval == 0.5
    assert FolderWatcher({"r": drop}, settle_seconds=0, rescan_seconds=60).check_interval == 0.02
