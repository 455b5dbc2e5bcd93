"""The readiness rule and the candidate table, driven with made-up times: no files, no sleeping.

Times are plain monotonic seconds chosen by each test. `started` is the clock read before a stat,
`now` when its result arrived; a stat that shows no change may make a file ready, one that shows a
change restarts its settle clock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.readiness import Candidate, CandidateTable, Signature

SETTLE = 10.0
HOLD = 600.0
FOLDER = Path("/drop")
A = FOLDER / "a.txt"
B = FOLDER / "b.txt"
ARRIVED = datetime(2026, 1, 5, 7, 0, tzinfo=timezone.utc)


def sig(size: int = 100, mtime_ns: int = 1, inode: int = 7) -> Signature:
    return (size, mtime_ns, inode)


def table(ready_suffix: str = "") -> CandidateTable:
    return CandidateTable(SETTLE, ready_suffix=ready_suffix, write_hold_seconds=HOLD, wall_clock=lambda: ARRIVED)


def only(t: CandidateTable) -> Candidate:
    (candidate,) = t.pending()
    return candidate


def check_at(t: CandidateTable, path: Path, started: float, signature: Signature | None, marker: bool = False) -> bool:
    """A stat of `path` that began at `started` and showed `signature` (None: gone)."""
    check = t.check(path)
    assert check is not None
    return t.verify(check, signature, started=started, now=started + 0.001, marker_exists=marker)


# ----------------------------------------------------------------------------------------------
# The settle rule


def test_a_new_file_is_ready_exactly_settle_seconds_after_we_saw_it() -> None:
    t = table()
    assert t.saw("r", A, sig(), now=100.0) is True  # a new candidate: pending changed
    found = only(t)
    assert (found.route, found.first_seen, found.last_change, found.ready) == ("r", 100.0, 100.0, False)
    assert found.arrived_at == ARRIVED and found.marker is None
    assert t.deadline(A) == 100.0 + SETTLE

    assert check_at(t, A, 109.999, sig()) is False
    assert not only(t).ready
    assert check_at(t, A, 100.0 + SETTLE, sig()) is True  # at the deadline itself
    assert only(t).ready
    assert t.deadline(A) is None and t.due(10_000.0) == ([], None)


def test_a_stat_taken_before_the_deadline_never_makes_the_file_ready_even_if_it_arrives_late() -> None:
    """A slow share: the stat began before the deadline and its answer came after it."""
    t = table()
    t.saw("r", A, sig(), now=100.0)
    check = t.check(A)
    assert check is not None
    assert t.verify(check, sig(), started=109.5, now=115.0) is False
    assert not only(t).ready


def test_any_change_restarts_the_clock_and_a_ready_file_becomes_not_ready() -> None:
    t = table()
    t.saw("r", A, sig(size=10), now=100.0)
    assert check_at(t, A, 105.0, sig(size=20)) is False  # grew: changed at 105.001 (when we learned it)
    assert only(t).last_change == 105.001
    assert check_at(t, A, 115.0, sig(size=20)) is False
    assert check_at(t, A, 115.001, sig(size=20)) is True

    assert t.saw("r", A, sig(size=20, mtime_ns=2), now=200.0) is True  # ready -> not ready: tell the daemon
    assert not only(t).ready and only(t).last_change == 200.0 and only(t).first_seen == 100.0


def test_an_event_restarts_the_clock_even_when_the_signature_does_not_show_it_yet() -> None:
    t = table()
    t.saw("r", A, sig(), now=100.0)
    t.saw("r", A, sig(), now=108.0, changed=True)
    assert t.deadline(A) == 118.0
    assert check_at(t, A, 115.0, sig()) is False


def test_a_years_old_mtime_changes_nothing_only_our_clock_counts() -> None:
    t = table()
    ancient = sig(mtime_ns=1_000_000_000)  # 1970, as a file moved back from the archive may carry
    t.saw("r", A, ancient, now=5000.0)
    assert check_at(t, A, 5001.0, ancient) is False
    assert check_at(t, A, 5010.0, ancient) is True


def test_a_new_inode_under_the_same_name_is_a_new_file() -> None:
    t = table()
    t.saw("r", A, sig(inode=1), now=100.0)
    check_at(t, A, 110.0, sig(inode=1))
    assert t.saw("r", A, sig(inode=2), now=120.0) is True
    assert (only(t).first_seen, only(t).ready) == (120.0, False)


def test_due_lists_only_files_past_their_deadline_and_names_the_next_one() -> None:
    t = table()
    t.saw("r", A, sig(inode=1), now=100.0)
    t.saw("r", B, sig(inode=2), now=103.0)
    checks, upcoming = t.due(105.0)
    assert checks == [] and upcoming == 110.0
    checks, upcoming = t.due(111.0)
    assert [c.path for c in checks] == [A] and upcoming == 113.0
    assert t.verify(checks[0], sig(inode=1), started=111.0, now=111.0) is True
    assert t.due(111.0) == ([], 113.0)


def test_zero_settle_is_ready_at_the_first_check_after_being_seen() -> None:
    t = CandidateTable(0.0)
    t.saw("r", A, sig(), now=100.0)
    assert t.deadline(A) == 100.0
    assert check_at(t, A, 100.0, sig()) is True


def test_a_failed_stat_is_retried_no_sooner_than_asked_and_a_stale_result_is_ignored() -> None:
    t = table()
    t.saw("r", A, sig(), now=100.0)
    (check,), _ = t.due(111.0)
    t.postpone(check, 112.0)
    assert t.due(111.5) == ([], 112.0)

    t.saw("r", A, sig(inode=9), now=111.6)  # replaced meanwhile: the old check's answer is stale
    assert t.verify(check, None, started=111.7, now=111.7) is False
    assert len(t.pending()) == 1
    fresh = t.check(A)
    assert fresh is not None
    assert t.verify(fresh, None, started=111.8, now=111.8) is True  # gone
    assert t.pending() == []


# ----------------------------------------------------------------------------------------------
# Ready markers


def test_with_a_ready_suffix_only_the_marker_counts() -> None:
    t = table(ready_suffix=".done")
    t.saw("r", A, sig(), now=100.0)
    assert only(t).marker == FOLDER / "a.txt.done"
    assert t.deadline(A) is None, "nothing to wake up for: the marker's arrival is an event or a listing"
    assert check_at(t, A, 1000.0, sig(), marker=False) is False
    assert check_at(t, A, 100.5, sig(), marker=True) is True, "the marker says done, however recent the change"
    assert check_at(t, A, 101.0, sig(), marker=False) is True  # the marker went away: not ready again
    assert not only(t).ready


# ----------------------------------------------------------------------------------------------
# Claims by the daemon


def test_a_taken_file_is_not_offered_again_until_it_leaves_or_changes() -> None:
    t = table()
    t.saw("r", A, sig(), now=100.0)
    t.take([A, FOLDER / "unknown.txt"])
    assert t.pending() == []
    assert t.saw("r", A, sig(), now=130.0) is False, "a rescan before the daemon's rename"
    assert t.pending() == []
    assert t.claims() == [(A, sig())]

    t.left(A)  # an event: the name left the folder (even if the same file is back already)
    assert t.saw("r", A, sig(), now=140.0) is True
    assert only(t).first_seen == 140.0


def test_a_claim_ends_when_a_listing_no_longer_shows_the_file_or_a_stat_shows_another() -> None:
    t = table()
    t.saw("r", A, sig(inode=1), now=100.0)
    t.saw("r", B, sig(inode=2), now=100.0)
    t.take([A, B])
    assert t.listed(FOLDER, {B}, started=150.0) is False  # only claims changed, not the candidates
    assert t.claims() == [(B, sig(inode=2))]
    assert t.end_claim(B, sig(inode=2), sig(inode=2)) is False
    assert t.end_claim(B, sig(inode=2), sig(inode=3)) is True, "another file has the name now"
    assert t.claims() == []


def test_a_listing_forgets_vanished_candidates_but_not_ones_seen_after_it_began() -> None:
    t = table()
    t.saw("r", A, sig(inode=1), now=100.0)
    t.saw("r", B, sig(inode=2), now=151.0)  # an event while the listing ran: it may have missed B
    t.saw("other", Path("/elsewhere/c.txt"), sig(inode=3), now=100.0)
    assert t.listed(FOLDER, set(), started=150.0) is True
    assert {c.path for c in t.pending()} == {B, Path("/elsewhere/c.txt")}


# ----------------------------------------------------------------------------------------------
# Open for writing (inotify opens and closes)


def test_a_writer_that_pauses_is_held_until_it_closes_the_file() -> None:
    t = table()
    t.saw("r", A, sig(size=0), now=100.0)
    t.opened(A)
    t.written(A)
    t.saw("r", A, sig(size=50, mtime_ns=2), now=100.2, changed=True)  # the header
    assert t.deadline(A) == 100.2 + HOLD
    assert check_at(t, A, 160.0, sig(size=50, mtime_ns=2)) is False, "a minute of silence is not the end"

    t.closed(A, wrote=True)  # IN_CLOSE_WRITE
    assert t.deadline(A) == 100.2 + SETTLE
    assert check_at(t, A, 160.0, sig(size=50, mtime_ns=2)) is True


def test_a_reader_neither_holds_the_file_nor_releases_a_writer() -> None:
    t = table()
    t.saw("r", A, sig(), now=100.0)
    t.opened(A)  # a reader (antivirus, backup): no modification follows
    assert check_at(t, A, 110.0, sig()) is True
    t.closed(A, wrote=False)

    t.saw("r", B, sig(inode=2), now=100.0)
    t.opened(B)  # the writer
    t.written(B)
    t.opened(B)  # a reader comes and goes meanwhile
    t.closed(B, wrote=False)
    assert check_at(t, B, 200.0, sig(inode=2)) is False, "the writer is still there"
    t.closed(B, wrote=True)
    assert check_at(t, B, 200.0, sig(inode=2)) is True


def test_a_modification_without_a_seen_open_does_not_hold() -> None:
    """E.g. a writer that opened the file before we tracked it: the settle rule alone decides."""
    t = table()
    t.saw("r", A, sig(), now=100.0)
    t.written(A)
    assert check_at(t, A, 110.0, sig()) is True


def test_an_empty_file_opened_by_its_creator_is_held_until_the_open_is_closed() -> None:
    t = table()
    t.saw("r", A, sig(size=0), now=100.0)
    t.opened(A)  # open(O_CREAT): "created, opened", then the export's long query
    assert check_at(t, A, 200.0, sig(size=0)) is False
    t.closed(A, wrote=False)  # it was only a reader of an empty file after all
    assert check_at(t, A, 200.0, sig(size=0)) is True

    t.saw("r", B, sig(size=0, inode=2), now=300.0)
    t.opened(B)
    t.closed(B, wrote=True)
    assert check_at(t, B, 310.0, sig(size=0, inode=2)) is True


def test_opening_a_ready_empty_file_makes_it_not_ready_until_closed() -> None:
    t = table()
    t.saw("r", A, sig(size=0), now=100.0)
    check_at(t, A, 110.0, sig(size=0))
    assert t.opened(A) is True and not only(t).ready
    t.closed(A, wrote=True)
    assert t.deadline(A) == 110.0  # due at once: the last change is long past
    assert check_at(t, A, 111.0, sig(size=0)) is True


def test_a_writer_still_silent_after_the_hold_limit_is_treated_as_done_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = table()
    t.saw("r", A, sig(), now=100.0)
    t.opened(A)
    t.written(A)
    assert check_at(t, A, 100.0 + HOLD - 1, sig()) is False
    with caplog.at_level(logging.WARNING, logger="agent.readiness"):
        assert check_at(t, A, 100.0 + HOLD, sig()) is True
    assert any("still looks open for writing" in r.getMessage() and "a.txt" in r.getMessage() for r in caplog.records)


def test_the_hold_limit_with_a_ready_marker_still_needs_the_marker() -> None:
    t = table(ready_suffix=".done")
    t.saw("r", A, sig(), now=100.0)
    t.opened(A)
    t.written(A)
    assert check_at(t, A, 150.0, sig(), marker=True) is False, "the marker came before the writer closed"
    assert check_at(t, A, 100.0 + HOLD, sig(), marker=False) is False
    assert t.deadline(A) is None, "hold over: now only the marker can make it ready"
    assert check_at(t, A, 100.0 + HOLD + 1, sig(), marker=True) is True


def test_lost_events_drop_the_open_state_and_the_settle_rule_decides() -> None:
    t = table()
    for path, route, inode in ((A, "r", 1), (B, "other", 2)):
        t.saw(route, path, sig(inode=inode), now=100.0)
        t.opened(path)
        t.written(path)
    t.events_lost("r")  # one observer restarted
    assert check_at(t, A, 110.0, sig(inode=1)) is True
    assert check_at(t, B, 110.0, sig(inode=2)) is False
    t.events_lost()  # an inotify queue overflow: every route
    assert check_at(t, B, 110.0, sig(inode=2)) is True


def test_open_and_close_events_for_unknown_names_are_ignored() -> None:
    t = table()
    t.opened(A)
    t.written(A)
    t.closed(A, wrote=True)
    t.closed(A, wrote=False)
    assert t.pending() == [] and t.deadline(A) is None


# ----------------------------------------------------------------------------------------------
# Unsupported entries, pending()


def test_an_unsupported_entry_is_reported_once_per_inode_and_type() -> None:
    t = table()
    t.saw("r", A, sig(), now=100.0)
    assert t.unsupported(A, (7, 0o120000)) is True  # became a symlink: not a candidate any more
    assert t.pending() == []
    assert t.unsupported(A, (7, 0o120000)) is False
    assert t.unsupported(A, (8, 0o040000)) is True  # now a folder
    assert t.gone(A) is False
    assert t.unsupported(A, (8, 0o040000)) is True, "gone and back: a new entry"
    t.listed(FOLDER, set(), started=200.0)
    assert t.unsupported(A, (8, 0o040000)) is True


def test_pending_is_oldest_first_then_by_name_per_route_and_copies() -> None:
    t = table()
    t.saw("r", B, sig(inode=2), now=100.0)
    t.saw("r", A, sig(inode=1), now=100.0)
    t.saw("s", Path("/other/c.txt"), sig(inode=3), now=99.0)
    assert [c.path.name for c in t.pending()] == ["c.txt", "a.txt", "b.txt"]
    assert [c.path.name for c in t.pending("r")] == ["a.txt", "b.txt"]
    t.pending()[0].ready = True
    assert not any(c.ready for c in t.pending()), "callers get copies"
    assert t.tracked() == {A, B, Path("/other/c.txt")}
    assert t.not_ready([A, FOLDER / "unknown.txt"]) == [A]
    assert len(t.all_checks()) == 3
