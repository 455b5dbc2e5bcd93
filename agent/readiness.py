"""When a dropped file is completely written: the readiness rule and the table of candidate files.

This module is pure: no I/O, no threads, no clock of its own. The watcher feeds it what it saw (lstat
signatures, watchdog events) together with the monotonic time of each observation, and asks it which
files are ready and when it should look again. Tests drive it with made-up times.

The rule, and why each part is there:

* **Still for settle_seconds, by our clock.** A file is ready when its signature (size, mtime_ns,
  inode) has not changed for `settle_seconds` since the last change *we saw* (the monotonic time of
  the observation, never the file's mtime: a file an admin moves back from the archive keeps its
  years-old mtime, and that must neither make it ready early nor make us skip it).
* **Never early.** Readiness is only decided from a stat, and only with `started`, the clock read
  *before* that stat: the stat proves the file unchanged from its last change until at least then. A
  stat taken before a file's deadline can therefore never make it ready.
* **Ready markers.** With `ready_suffix`, the SIS says when a file is complete by creating
  `NAME<suffix>`; the file is ready once the marker exists, however recently it changed.
* **Still open for writing.** A writer that pauses (an export that writes its header, then runs a
  long query) leaves a file that does not change for a while but is not complete. On native
  (inotify) observers we follow opens and closes, and a file that looks open for writing is not
  ready (with either rule above) until its writer closes it, or until it has been still for
  `write_hold_seconds` (a safety net, logged as a warning, for a close we never heard about).
* **Deadlines.** :meth:`CandidateTable.due` answers "which files could be ready now, and when is the
  next moment another one could be?", so the watcher sleeps until exactly then instead of ticking.

What open-for-writing tracking can see, and what it cannot:

* watchdog reports opens without their mode, so a write-open is inferred: an open followed by a
  modification (IN_MODIFY) while it is still open is a writer; an open of an *empty* file counts as
  its creator's (``open(O_CREAT)`` produces "created, opened" and nothing more until the first write).
  A close-write (IN_CLOSE_WRITE) ends the writer; a close-no-write (a reader: an antivirus, `inspect`,
  a backup) does not, except that the "empty file" guess ends once every open we saw is closed.
* It sees only writers on *this* machine, through inotify: the polling observer (network shares)
  has no open/close events at all, and an NFS/SMB client on another host is invisible even to
  inotify. There, only the settle rule (or a ready marker) protects against a paused writer: choose
  settle_seconds longer than the longest pause, or use ready markers. On NFS, also keep settle_seconds
  well above the client's attribute cache time (`acregmin`, 3 s by default), which delays what lstat
  shows of another host's writes.
* A writer that opened the file before we tracked it (before the agent started, or before the file
  was seen) is not known as open; nor is one whose events were lost (inotify queue overflow, an
  observer restart): then open state is forgotten (:meth:`CandidateTable.events_lost`) and the
  settle rule alone applies.
* A writer that keeps a file open without writing for longer than `write_hold_seconds` is treated
  as done (with a warning); a file renamed in from another folder has no open to wait for and
  settles by the clock alone (that is the safe way for an SIS to deliver: write elsewhere, rename in).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger(__name__)

# (size, mtime_ns, inode): what "unchanged" means for readiness.
Signature = tuple[int, int, int]


def signature_of(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Candidate:
    """A file in a watched folder that the daemon has not taken yet."""

    route: str
    path: Path
    first_seen: float  # monotonic
    last_change: float  # monotonic time of the last observed change (size/mtime/inode/event)
    arrived_at: datetime  # wall clock UTC when first seen
    ready: bool
    marker: Path | None  # the ready marker, when ready_suffix is used


@dataclass(eq=False)
class _Entry:
    candidate: Candidate
    signature: Signature
    opens: int = 0  # opens seen and not closed yet, of any mode
    writer: bool = False  # modified while open, and no close-write since
    empty_open: bool = False  # opened while empty: most likely its creator, who has not written yet
    not_before: float = 0.0  # a failed check is not retried before this

    @property
    def holding(self) -> bool:
        """Looks open for writing."""
        return self.writer or self.empty_open


class Check(NamedTuple):
    """A file to lstat now; its result goes back through :meth:`CandidateTable.verify`."""

    path: Path
    marker: Path | None  # also look whether the ready marker exists
    token: object  # which entry was due: a result for a replaced entry is ignored


class CandidateTable:
    """Every candidate file of every route, and the files the daemon has claimed.

    Not thread-safe: the watcher calls it under its own lock. Methods that return a bool return
    True when :meth:`pending` changed (a candidate came, went or became ready or not ready), which
    is when the watcher tells the daemon.
    """

    def __init__(
        self,
        settle_seconds: float,
        *,
        ready_suffix: str = "",
        write_hold_seconds: float = 3600.0,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.ready_suffix = ready_suffix
        self.write_hold_seconds = write_hold_seconds
        self._wall_clock = wall_clock
        self._tracked: dict[Path, _Entry] = {}
        self._taken: dict[Path, Signature] = {}  # claimed by the daemon, still on disk
        self._reported: dict[Path, tuple[int, int]] = {}  # unsupported entries: (inode, type) told once

    # ------------------------------------------------------------------ what a stat showed

    def saw(
        self,
        route: str,
        path: Path,
        signature: Signature,
        *,
        now: float,
        started: float | None = None,
        marker_exists: bool = False,
        changed: bool = False,
    ) -> bool:
        """An lstat showed a regular file with this signature.

        `now`: when the stat's result arrived (a change is dated then: never earlier than it
        happened). `started`: the clock read before the stat, when readiness may be decided from it
        (None: only record the change). `changed`: an event says it was written even if the
        signature does not show it yet.
        """
        self._reported.pop(path, None)
        taken = self._taken.get(path)
        if taken is not None:
            if taken == signature:
                return False  # claimed and not moved yet: not offered again
            del self._taken[path]
        entry = self._tracked.get(path)
        if entry is None or entry.signature[2] != signature[2]:
            if entry is not None:
                logger.debug("%s was replaced by a new file; starting over", path)
            self._tracked[path] = self._new_entry(route, path, signature, now)
            return True
        if entry.signature != signature or changed:
            entry.signature = signature
            entry.candidate.last_change = now
            entry.not_before = 0.0
            if entry.candidate.ready:
                entry.candidate.ready = False
                return True
            return False
        entry.not_before = 0.0
        return False if started is None else self._evaluate(entry, started, marker_exists)

    def verify(
        self, check: Check, signature: Signature | None, *, started: float, now: float, marker_exists: bool = False
    ) -> bool:
        """The result of a due :class:`Check`: the signature, or None when the path is gone."""
        entry = self._tracked.get(check.path)
        if entry is None or entry is not check.token:
            return False  # replaced or dropped meanwhile (an event got there first)
        if signature is None:
            return self.forget(check.path)
        return self.saw(
            entry.candidate.route, check.path, signature, now=now, started=started, marker_exists=marker_exists
        )

    def postpone(self, check: Check, until: float) -> None:
        """The check could not stat the file (EACCES, ESTALE): not again before `until`."""
        entry = self._tracked.get(check.path)
        if entry is check.token and entry is not None:
            entry.not_before = until

    def forget(self, path: Path) -> bool:
        """No longer a candidate: gone, or not a regular file any more."""
        entry = self._tracked.pop(path, None)
        if entry is None:
            return False
        state = "after it was ready" if entry.candidate.ready else "before it was ready"
        logger.debug("%s disappeared or changed type %s; forgetting it", path, state)
        return True

    def gone(self, path: Path) -> bool:
        """Nothing has this name any more: forget the candidate, any claim, any report about it."""
        self._taken.pop(path, None)
        self._reported.pop(path, None)
        return self.forget(path)

    def unsupported(self, path: Path, identity: tuple[int, int]) -> bool:
        """This name is a symlink, folder or special file (`identity`: inode and file type). True the
        first time, when the daemon should hear about it; the same entry is reported only once."""
        self.forget(path)
        if self._reported.get(path) == identity:
            return False
        self._reported[path] = identity
        return True

    def left(self, path: Path) -> None:
        """An event says this name left the folder: a claim on it is over for good, even if the same
        file is already back (an admin moving it straight back from the archive to reprocess it)."""
        self._taken.pop(path, None)

    # ------------------------------------------------------------------ the daemon's claims

    def take(self, paths: Iterable[Path]) -> None:
        """The daemon claimed these files. Each one's signature is kept until the file leaves the
        folder, so a rescan that runs before the daemon's rename does not offer it again."""
        for path in paths:
            entry = self._tracked.pop(path, None)
            if entry is not None:
                self._taken[path] = entry.signature

    def claims(self) -> list[tuple[Path, Signature]]:
        return list(self._taken.items())

    def end_claim(self, path: Path, claimed: Signature, signature: Signature | None) -> bool:
        """A fresh lstat of a claimed path. True when the claim ended and a different file now has
        the name (the caller then records that file as a new candidate)."""
        if self._taken.get(path) != claimed:
            return False
        if signature == claimed:
            return False
        del self._taken[path]
        return signature is not None

    def listed(self, folder: Path, present: set[Path], started: float) -> bool:
        """A full listing of `folder`, begun at `started`, showed `present`; whatever else we knew
        there is gone: candidates, claims, reported entries (a new entry of the same name is new).

        A listing can miss a name created while it ran, so a candidate seen (or changed) after
        `started` is kept: its own events, or the next listing, tell what became of it.
        """
        for known in (self._taken, self._reported):
            for path in [p for p in known if p.parent == folder and p not in present]:
                del known[path]
        vanished = [
            path
            for path, entry in self._tracked.items()
            if path.parent == folder and path not in present and entry.candidate.last_change < started
        ]
        for path in vanished:
            self.forget(path)
        return bool(vanished)

    # ------------------------------------------------------------------ opens and closes (inotify)

    def opened(self, path: Path) -> bool:
        """An open of unknown mode. True when it made a ready (empty) file not ready again."""
        entry = self._tracked.get(path)
        if entry is None:
            return False
        entry.opens += 1
        if entry.signature[0] == 0:
            entry.empty_open = True
            if entry.candidate.ready:
                entry.candidate.ready = False
                return True
        return False

    def written(self, path: Path) -> None:
        """A modification event (IN_MODIFY): while an open is outstanding, that open is a writer."""
        entry = self._tracked.get(path)
        if entry is not None and entry.opens > 0:
            entry.writer = True

    def closed(self, path: Path, *, wrote: bool) -> None:
        """A close: `wrote` for a close-write (IN_CLOSE_WRITE), else a reader's close-no-write."""
        entry = self._tracked.get(path)
        if entry is None:
            return
        entry.opens = max(0, entry.opens - 1)
        if wrote:
            entry.writer = entry.empty_open = False
        elif entry.opens == 0:
            entry.empty_open = False

    def events_lost(self, route: str | None = None) -> None:
        """Events were lost (queue overflow, observer restart): opens and closes we did not hear
        about make the open state meaningless, so it is dropped and the settle rule decides."""
        for entry in self._tracked.values():
            if route is None or entry.candidate.route == route:
                entry.opens, entry.writer, entry.empty_open = 0, False, False

    # ------------------------------------------------------------------ questions

    def pending(self, route: str | None = None) -> list[Candidate]:
        """Copies of the candidates, oldest first (then by name)."""
        found = [replace(e.candidate) for e in self._tracked.values() if route is None or e.candidate.route == route]
        found.sort(key=lambda c: (c.first_seen, c.path.name))
        return found

    def due(self, now: float) -> tuple[list[Check], float | None]:
        """Files worth a stat at `now` (their deadline has passed) and the next deadline after them."""
        checks: list[Check] = []
        next_deadline: float | None = None
        for path, entry in self._tracked.items():
            deadline = self._deadline(entry)
            if deadline is None:
                continue
            if deadline <= now:
                checks.append(Check(path, entry.candidate.marker, entry))
            elif next_deadline is None or deadline < next_deadline:
                next_deadline = deadline
        return checks, next_deadline

    def deadline(self, path: Path) -> float | None:
        """When this file could next become ready (None: not tracked, ready, or waiting for its marker)."""
        entry = self._tracked.get(path)
        return None if entry is None else self._deadline(entry)

    def check(self, path: Path) -> Check | None:
        entry = self._tracked.get(path)
        return None if entry is None else Check(path, entry.candidate.marker, entry)

    def all_checks(self) -> list[Check]:
        return [Check(path, e.candidate.marker, e) for path, e in self._tracked.items()]

    def tracked(self) -> set[Path]:
        return set(self._tracked)

    def not_ready(self, paths: Iterable[Path]) -> list[Path]:
        """Those of `paths` still tracked and not ready."""
        return [p for p in paths if p in self._tracked and not self._tracked[p].candidate.ready]

    # ------------------------------------------------------------------ the rule

    def _deadline(self, entry: _Entry) -> float | None:
        """The earliest `started` at which a stat could make this entry ready. The comparisons in
        :meth:`_evaluate` use the very same sums, so a check at its deadline always decides."""
        if entry.candidate.ready:
            return None
        last = entry.candidate.last_change
        if entry.holding:
            deadline = last + self.write_hold_seconds
        elif self.ready_suffix:
            return None  # the marker's arrival is an event (native) or shows in a listing (polling)
        else:
            deadline = last + self.settle_seconds
        return max(deadline, entry.not_before)

    def _evaluate(self, entry: _Entry, started: float, marker_exists: bool) -> bool:
        """Decide readiness from a stat taken at/after `started` that showed no change."""
        candidate = entry.candidate
        if entry.holding:
            if started < candidate.last_change + self.write_hold_seconds:
                return self._set_ready(candidate, False)
            logger.warning(
                "%s still looks open for writing, but has not changed for %.0f s; treating its writer as done",
                candidate.path,
                started - candidate.last_change,
            )
            entry.opens, entry.writer, entry.empty_open = 0, False, False
        ready = marker_exists if self.ready_suffix else started >= candidate.last_change + self.settle_seconds
        return self._set_ready(candidate, ready)

    @staticmethod
    def _set_ready(candidate: Candidate, ready: bool) -> bool:
        if ready == candidate.ready:
            return False
        candidate.ready = ready
        logger.debug("%s is %s", candidate.path, "ready" if ready else "not ready any more")
        return True

    def _new_entry(self, route: str, path: Path, signature: Signature, now: float) -> _Entry:
        logger.debug("New file %s (route %s)", path, route)
        candidate = Candidate(
            route=route,
            path=path,
            first_seen=now,
            last_change=now,
            arrived_at=self._wall_clock(),
            ready=False,
            marker=path.with_name(path.name + self.ready_suffix) if self.ready_suffix else None,
        )
        return _Entry(candidate, signature)
