"""Finds files in the watched folders and says, as soon as the readiness rule allows, which are ready.

Why it is built this way:

* **Events are hints, `lstat` is the truth.** watchdog events arrive late, merged, or not at all
  (an inotify queue overflow loses them; inotify never sees writes made by another NFS/SMB host),
  and they keep coming for a file after it was deleted. So every event only makes us `lstat` the
  path now, and a periodic full rescan (`rescan_seconds`) finds whatever the events missed.
* **The rule lives in :mod:`agent.readiness`** (pure, unit-tested with fake times): still for
  `settle_seconds` by our monotonic clock, or a ready marker; not while it looks open for writing.
  This module owns the threads and the I/O around it.
* **Deadline-driven, not ticking.** The checker thread sleeps until the earliest settle deadline
  (or an event that brings one closer, a rescan, a health check, stop), re-stats only the files that
  are due, and calls `on_change` the moment one becomes ready, so the daemon can act at once.
* **Polling that skips what it ignores.** Folders on network shares are polled with our own scan
  (:mod:`agent.observers`): ignored names are dropped before any stat.
* **We never act on files.** The watcher never posts, writes the journal or moves anything: it
  reports candidates (:meth:`FolderWatcher.pending`) and unsupported entries (symlinks, folders,
  special files, via `on_unsupported`), and the daemon decides.
* **Self-healing.** If an observer thread dies it is restarted and the folder rescanned; a folder
  missing at start (an NFS share that mounts late) is logged and retried on every rescan.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
)

from agent.listing import list_folder, marker_base, probe_path, skip_pattern, unsupported_reason
from agent.observers import JOIN_SECONDS, FolderObservers, OverflowListener, WatchedFolder
from agent.readiness import Candidate, CandidateTable, Check, Signature, signature_of
from agent.settings import OBSERVERS

__all__ = ["Candidate", "FolderWatcher"]

logger = logging.getLogger(__name__)

# Events that mean "someone wrote or (re)created this name" and so restart the settle clock.
_CHANGE_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED})
_OPEN_EVENTS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})
_MIN_NAP = 0.004


@dataclass
class _Notes:
    """What to tell the daemon and the checker once the lock is released (never call out under it)."""

    changed: bool = False
    unsupported: list[tuple[str, Path, str]] = field(default_factory=list)
    earliest: float = math.inf  # the earliest deadline this change produced

    def deadline(self, when: float | None) -> None:
        if when is not None and when < self.earliest:
            self.earliest = when


class FolderWatcher:
    """Tracks the files of each route's folder until the daemon takes them.

    Threads: one observer per folder (watchdog's inotify threads, or our poller) delivers events or
    polls; one checker thread sleeps until the next settle deadline, health check or rescan; the
    daemon calls :meth:`pending` and :meth:`take` from its own thread. One lock guards the table;
    callbacks (`on_unsupported`, `on_change`) are always called after it is released.

    `check_interval`: how often observers' health is checked (and, in :meth:`wait_until_settled`,
    files re-stat'ed). `write_hold_seconds`: how long a file that still looks open for writing may
    stay unchanged before it is treated as complete anyway (see :mod:`agent.readiness`).
    """

    def __init__(
        self,
        folders: Mapping[str, Path],
        *,
        settle_seconds: float,
        rescan_seconds: float,
        observer: str = "auto",
        ready_suffix: str = "",
        ignore: Sequence[str] = (),
        on_unsupported: Callable[[str, Path, str], None] | None = None,
        on_change: Callable[[], None] | None = None,
        check_interval: float | None = None,
        write_hold_seconds: float = 3600.0,
    ) -> None:
        if observer not in OBSERVERS:
            raise ValueError(f"observer must be one of {', '.join(OBSERVERS)}, not {observer!r}")
        if settle_seconds < 0:
            raise ValueError("settle_seconds must not be negative")
        if rescan_seconds <= 0:
            raise ValueError("rescan_seconds must be positive")
        self.settle_seconds = float(settle_seconds)
        self.rescan_seconds = float(rescan_seconds)
        self.ready_suffix = ready_suffix
        self.check_interval = max(
            0.02, check_interval if check_interval is not None else min(0.5, self.settle_seconds / 4)
        )
        # No faster than settling needs: a listing of a big folder is not free, even filtered.
        self.polling_interval = min(1.0, max(0.1, self.settle_seconds / 2))
        self._skip = skip_pattern(ignore, ready_suffix)
        self._on_unsupported = on_unsupported
        self._on_change = on_change

        self._routes: dict[str, WatchedFolder] = {}
        self._route_by_dir: dict[str, str] = {}
        for name, folder in folders.items():
            absolute = Path(os.path.abspath(folder))
            if str(absolute) in self._route_by_dir:
                raise ValueError(
                    f"routes '{self._route_by_dir[str(absolute)]}' and '{name}' watch the "
                    f"same folder {absolute}; each folder can feed only one route"
                )
            self._route_by_dir[str(absolute)] = name
            self._routes[name] = WatchedFolder(name, absolute)

        self._lock = threading.Lock()
        self._table = CandidateTable(
            self.settle_seconds, ready_suffix=ready_suffix, write_hold_seconds=write_hold_seconds
        )

        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._next_wake = -math.inf  # when the checker plans to wake; -inf while it is busy
        self._rescan_requested = False
        self._checker: threading.Thread | None = None
        self._overflow_listener: OverflowListener | None = None
        self._started = False
        self._observers = FolderObservers(
            self._routes.values(),
            observer,
            on_event=self._handle_event,
            poll=lambda route: self._scan_route(route, polling=True),
            polling_interval=self.polling_interval,
            retry_seconds=self.rescan_seconds,
        )

    @property
    def restarts(self) -> int:
        """Observer restarts after a death (self-health, for logs and tests)."""
        return self._observers.restarts

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Observers first, then the initial scan (so nothing created in between is missed)."""
        if self._started:
            raise RuntimeError("FolderWatcher.start() was already called")
        self._started = True
        self._stopping.clear()
        self._overflow_listener = OverflowListener(self._events_lost)
        self._overflow_listener.install()
        self._observers.start_all()
        self.scan()
        self._checker = threading.Thread(target=self._run_checker, name="feed-agent-watcher", daemon=True)
        self._checker.start()

    def stop(self) -> None:
        """Stop the checker and the observers and wait for their threads; safe to call twice."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        if self._checker is not None and self._checker is not threading.current_thread():
            self._checker.join(timeout=JOIN_SECONDS)
            if self._checker.is_alive():
                logger.warning(
                    "The watcher's checker thread did not stop within %.0f s (a hung network share?); "
                    "leaving it behind",
                    JOIN_SECONDS,
                )
        self._observers.stop_all()
        if self._overflow_listener is not None:
            self._overflow_listener.remove()
            self._overflow_listener = None

    def request_rescan(self) -> None:
        """Ask the checker thread for a full rescan as soon as possible (e.g. events were lost)."""
        self._rescan_requested = True
        self._wake.set()

    def observer_kind(self, route: str) -> str:
        """ "native" or "polling": what watches (or will watch) this route's folder."""
        return self._routes[route].kind

    # ------------------------------------------------------------------ queries for the daemon

    def pending(self, route: str | None = None) -> list[Candidate]:
        """Copies of the known, not yet taken candidates, oldest first (then by name)."""
        with self._lock:
            return self._table.pending(route)

    def take(self, paths: Iterable[Path]) -> None:
        """Forget these files: the daemon claimed them.

        Each one's signature is remembered until the file leaves the folder, so a rescan that runs
        before the daemon's rename does not offer it again; once it is gone (or replaced), the same
        name is a brand-new candidate.
        """
        with self._lock:
            self._table.take(Path(os.path.abspath(p)) for p in paths)

    # ------------------------------------------------------------------ scanning

    def scan(self) -> None:
        """One synchronous full listing of every folder; new entries become candidates."""
        for route in self._routes.values():
            self._scan_route(route)

    def _scan_route(self, route: WatchedFolder, *, polling: bool = False) -> None:
        """List the folder (ignored names cost no stat) and fold what it shows into the table.

        The listing is also a readiness check: each lstat in it came after `listing.started`, and a
        ready marker shows as its name. `polling`: called every polling interval, so a folder that
        cannot be read is logged once per outage, not every second (rescans log it each time).
        """
        try:
            listing = list_folder(route.folder, self._skip, self.ready_suffix)
        except OSError as exc:
            if not (polling and route.missing):
                logger.error(
                    "Cannot read the watched folder %s of route '%s' (%s). Check that it exists and is "
                    "mounted; the agent will retry every %.0f s.",
                    route.folder,
                    route.name,
                    exc.strerror or exc,
                    self.rescan_seconds,
                )
            route.missing = True
            return
        if route.missing:
            route.missing = False
            logger.info("The watched folder %s of route '%s' is readable again", route.folder, route.name)
        notes = _Notes()
        now = time.monotonic()
        with self._lock:
            for path, st in listing.found:
                marker = path.name in listing.markers
                self._absorb(route.name, path, st, notes, now=now, started=listing.started, marker_exists=marker)
            notes.changed |= self._table.listed(route.folder, listing.present, listing.started)
        self._fire(notes)

    # ------------------------------------------------------------------ readiness checks

    def refresh(self) -> None:
        """One synchronous stat pass over every known candidate (and claimed file still present)."""
        started = time.monotonic()
        with self._lock:
            checks = self._table.all_checks()
            claims = self._table.claims()
        self._verify(checks, started, claims)

    def wait_until_settled(self, timeout: float | None = None) -> None:
        """For `run`: scan, then block until every file found is ready or gone.

        Files arriving after the scan are not waited for (a busy SIS must not keep a cron run alive
        forever). On timeout it just returns; :meth:`pending` then shows which are still not ready.
        With `ready_suffix`, a file whose marker never appears is waited for until the timeout.
        Without observers, changes are only seen by re-stat'ing, every `check_interval` at most.
        """
        end = None if timeout is None else time.monotonic() + timeout
        self.scan()
        with self._lock:
            waiting = self._table.tracked()
        while True:
            self.refresh()
            with self._lock:
                left = self._table.not_ready(waiting)
                _, next_deadline = self._table.due(time.monotonic())
            if not left:
                return
            now = time.monotonic()
            if end is not None and now >= end:
                logger.info(
                    "%d file(s) were not ready when the wait ended (still being written, or "
                    "waiting for a ready marker), e.g. %s",
                    len(left),
                    left[0],
                )
                return
            pause = min(self.check_interval, math.inf if end is None else end - now, (next_deadline or math.inf) - now)
            if self._stopping.wait(max(0.0, pause)):
                return

    def _verify(self, checks: list[Check], started: float, claims: Sequence[tuple[Path, Signature]] = ()) -> None:
        """lstat each due file (outside the lock) and fold the results in; `started` is read before."""
        probes = [(check, probe_path(check.path, check.marker)) for check in checks]
        claim_probes = [(path, claimed, probe_path(path, None)) for path, claimed in claims]
        now = time.monotonic()
        notes = _Notes()
        with self._lock:
            for check, probe in probes:
                st = probe.stat
                if probe.failed:
                    self._table.postpone(check, now + self.check_interval)
                elif st is not None and not stat.S_ISREG(st.st_mode):
                    self._absorb(self._route_by_dir[str(check.path.parent)], check.path, st, notes, now=now)
                else:
                    marker = probe.marker_exists
                    sig = None if st is None else signature_of(st)
                    notes.changed |= self._table.verify(check, sig, started=started, now=now, marker_exists=marker)
                    notes.deadline(self._table.deadline(check.path))
            for path, claimed, probe in claim_probes:
                st = probe.stat
                if not probe.failed and self._table.end_claim(path, claimed, None if st is None else signature_of(st)):
                    route = self._route_by_dir.get(str(path.parent))
                    if route is not None and st is not None:
                        self._absorb(route, path, st, notes, now=now)
        self._fire(notes)

    def _absorb(
        self,
        route: str,
        path: Path,
        st: os.stat_result,
        notes: _Notes,
        *,
        now: float,
        started: float | None = None,
        marker_exists: bool = False,
        changed: bool = False,
    ) -> None:
        """Record what one lstat showed (lock held): a candidate, or an entry we cannot send."""
        reason = unsupported_reason(path.name, st.st_mode, self._routes[route].folder)
        if reason is None:
            sig = signature_of(st)
            notes.changed |= self._table.saw(
                route, path, sig, now=now, started=started, marker_exists=marker_exists, changed=changed
            )
            notes.deadline(self._table.deadline(path))
        elif str(path) in self._route_by_dir:
            notes.changed |= self._table.forget(path)  # another route's folder nested in this one: not ours
        elif self._table.unsupported(path, (st.st_ino, stat.S_IFMT(st.st_mode))):
            notes.changed = True
            notes.unsupported.append((route, path, reason))

    # ------------------------------------------------------------------ the checker thread

    def _run_checker(self) -> None:
        """Sleep until the next deadline, health check or rescan; do what is due; repeat."""
        now = time.monotonic()
        next_rescan, next_health = now + self.rescan_seconds, now + self.check_interval
        while True:
            self._next_wake = -math.inf  # while we look, any change wakes us again
            self._wake.clear()
            if self._stopping.is_set():
                return
            wake_at = math.inf
            try:
                now = time.monotonic()
                rescan = now >= next_rescan or self._rescan_requested
                if rescan or now >= next_health:
                    if self._observers.heal(retry_missing=rescan, on_restart=self._events_lost) or rescan:
                        self._rescan_requested = False
                        next_rescan = time.monotonic() + self.rescan_seconds
                        self.scan()
                    next_health = time.monotonic() + self.check_interval
                wake_at = self._check_due()
            except Exception:
                logger.exception("The watcher's check failed; trying again in %.1f s", self.check_interval)
                next_health = time.monotonic() + self.check_interval
            # A deadline wake-up comes no sooner than _MIN_NAP after the last round: files that settle
            # within a few ms of each other are checked in one round (a burst of 2,000 files would
            # otherwise cost 2,000 rounds), at most _MIN_NAP late and never early.
            wake_at = max(wake_at, time.monotonic() + _MIN_NAP)
            self._next_wake = wake_at = min(wake_at, next_rescan, next_health)
            self._wake.wait(max(0.0, wake_at - time.monotonic()))

    def _check_due(self) -> float:
        """Stat every file whose deadline has passed; return the next deadline (inf: none)."""
        while not self._stopping.is_set():
            started = time.monotonic()
            with self._lock:
                checks, upcoming = self._table.due(started)
            if not checks:
                return math.inf if upcoming is None else upcoming
            self._verify(checks, started)
        return math.inf

    # ------------------------------------------------------------------ events

    def _handle_event(self, event: FileSystemEvent) -> None:
        """Observer thread: opens and closes update the open state; everything else makes us lstat."""
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        if kind in _OPEN_EVENTS or kind in (EVENT_TYPE_MODIFIED, EVENT_TYPE_CLOSED):
            self._note_open_state(src, kind)
            if kind in _OPEN_EVENTS:
                return  # an open or a reader's close changes nothing on disk
        left = kind in (EVENT_TYPE_DELETED, EVENT_TYPE_MOVED)
        self._examine(src, changed=kind in _CHANGE_EVENTS, left=left)
        if kind == EVENT_TYPE_MOVED and event.dest_path:
            self._examine(os.fsdecode(event.dest_path), changed=True)

    def _note_open_state(self, raw_path: str, kind: str) -> None:
        if os.path.dirname(raw_path) not in self._route_by_dir:
            return
        path = Path(raw_path)
        notes = _Notes()
        with self._lock:
            if kind == EVENT_TYPE_OPENED:
                notes.changed = self._table.opened(path)
            elif kind == EVENT_TYPE_MODIFIED:
                self._table.written(path)
            else:
                self._table.closed(path, wrote=kind == EVENT_TYPE_CLOSED)
            notes.deadline(self._table.deadline(path))
        self._fire(notes)

    def _examine(self, raw_path: str, *, changed: bool, left: bool = False) -> None:
        """Look at one path an event named. `left`: the event says this name left the folder."""
        route = self._route_by_dir.get(os.path.dirname(raw_path))
        if route is None:
            return  # the watched folder itself, or somewhere we do not watch
        path = Path(raw_path)
        if left:
            with self._lock:
                self._table.left(path)
        base = marker_base(path.name, self.ready_suffix)
        if base is not None:
            self._recheck(path.with_name(base))
            return
        if self._skip.match(path.name) is not None:
            return
        started = time.monotonic()
        probe = probe_path(path, path.with_name(path.name + self.ready_suffix) if self.ready_suffix else None)
        if probe.failed:
            return  # the deadline check or the next rescan will retry
        notes = _Notes()
        now = time.monotonic()
        with self._lock:
            if probe.stat is None:
                notes.changed = self._table.gone(path)
            else:
                marker = probe.marker_exists
                self._absorb(
                    route, path, probe.stat, notes, now=now, started=started, marker_exists=marker, changed=changed
                )
        self._fire(notes)

    def _recheck(self, path: Path) -> None:
        """A ready marker came or went: re-evaluate its file now rather than at the next rescan."""
        started = time.monotonic()
        with self._lock:
            check = self._table.check(path)
        if check is not None:
            self._verify([check], started)

    def _events_lost(self, route: str | None = None) -> None:
        """Events were lost: forget open state (closes may be among them). For an inotify queue
        overflow (every route) also rescan now; a restarted observer's route is rescanned anyway."""
        with self._lock:
            self._table.events_lost(route)
        if route is None:
            self.request_rescan()

    # ------------------------------------------------------------------ callbacks

    def _fire(self, notes: _Notes) -> None:
        for route, path, reason in notes.unsupported:
            if self._on_unsupported is None:
                logger.warning("Route '%s': %s", route, reason)
                continue
            try:
                self._on_unsupported(route, path, reason)
            except Exception:
                logger.exception("The handler for unsupported entry %s failed", path)
        if (notes.changed or notes.unsupported) and self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                logger.exception("The watcher's change callback failed")
        if notes.earliest < self._next_wake and threading.current_thread() is not self._checker:
            self._wake.set()  # a deadline earlier than the checker's plan (it re-reads the table itself)
