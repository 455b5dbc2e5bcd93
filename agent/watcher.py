"""Finds files in the watched folders and says when each one is completely written.

Why it is built this way:

* **Events are hints, `lstat` is the truth.** watchdog events arrive late, merged, or not at all
  (an inotify queue overflow loses them; inotify never sees writes made by another NFS/SMB host),
  and they keep coming for a file after it was deleted. So every event only makes us `lstat` the
  path now, and a periodic full rescan (`rescan_seconds`) finds whatever the events missed.
* **Readiness uses our own monotonic clock.** A file is ready when its size, mtime and inode have
  not changed for `settle_seconds` since the last change *we saw*. The file's mtime is never compared
  with the clock: a file an admin moves back from the archive keeps its years-old mtime, and that
  must neither make it ready early nor make us skip it. With `ready_suffix`, a file is ready once
  `NAME<suffix>` exists (the daemon consumes that marker after it claims the file).
* **We never act on files.** The watcher never posts, writes the journal or moves anything: it
  reports candidates (:meth:`FolderWatcher.pending`) and unsupported entries (symlinks, folders,
  special files, via `on_unsupported`), and the daemon decides.
* **Self-healing.** If an observer thread dies it is restarted and the folder rescanned; a folder
  missing at start (an NFS share that mounts late) is logged and retried on every rescan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from agent.settings import OBSERVERS

logger = logging.getLogger(__name__)

NATIVE = "native"
POLLING = "polling"
# Filesystems whose writes from other hosts never reach the local inotify.
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse.sshfs"})
# The daemon writes `NAME.reason.txt` beside a failed file; admins may move both back.
REASON_SUFFIX = ".reason.txt"
PROC_MOUNTS = Path("/proc/mounts")
# Events that mean "someone wrote or (re)created this name" and so restart the settle clock.
_CHANGE_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED})
# Our own (and the daemon's) reads of a file produce these; they say nothing about writing.
_NOISE_EVENTS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})
_JOIN_SECONDS = 10.0

# (size, mtime_ns, inode): what "unchanged" means for readiness.
_Signature = tuple[int, int, int]


# ----------------------------------------------------------------------------------------------
# Choosing the observer (pure functions, unit-tested without real mounts)


def _unescape_mount_field(text: str) -> str:
    r"""/proc/mounts writes space, tab, newline and backslash in paths as octal (`\040` …)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mounts(mounts_text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) for each well-formed line of a /proc/mounts text."""
    mounts: list[tuple[str, str]] = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape_mount_field(fields[1]), fields[2]))
    return mounts


def _is_under(path: str, mount_point: str) -> bool:
    """Component-wise prefix: `/mnt/nfs` contains `/mnt/nfs/drop`, not `/mnt/nfsdata`."""
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def mount_of(folder: Path, mounts_text: str) -> tuple[str, str] | None:
    """The mount (point, fstype) holding the folder's real path: the longest matching mount point.

    When the same point is mounted twice, the later line wins (it hides the earlier mount).
    """
    real = os.path.realpath(folder)
    best: tuple[str, str] | None = None
    for mount_point, fstype in parse_mounts(mounts_text):
        if _is_under(real, mount_point) and (best is None or len(mount_point) >= len(best[0])):
            best = (mount_point, fstype)
    return best


def choose_observer(folder: Path, mounts_text: str) -> str:
    """ "polling" when the folder lies on a network filesystem, else "native".

    inotify only sees changes made through the local kernel, so a file an SIS host writes onto an
    NFS or SMB share would never produce an event here; the polling observer lists the folder instead.
    """
    mount = mount_of(folder, mounts_text)
    return POLLING if mount is not None and mount[1] in NETWORK_FILESYSTEMS else NATIVE


def _read_mounts() -> str:
    try:
        return PROC_MOUNTS.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        logger.debug("Cannot read %s (%s); assuming local folders", PROC_MOUNTS, exc)
        return ""


# ----------------------------------------------------------------------------------------------
# Public data


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


# ----------------------------------------------------------------------------------------------
# Internals


@dataclass
class _Tracked:
    candidate: Candidate
    signature: _Signature


@dataclass
class _Route:
    name: str
    folder: Path
    kind: str
    observer: BaseObserver | None = None
    missing: bool = False


class _Probe(NamedTuple):
    """One lstat of a tracked path, taken outside the lock (a stat on NFS can be slow)."""

    stat: os.stat_result | None  # None: the path is gone
    failed: bool = False  # some other error (EACCES, ESTALE): try again next time
    marker_exists: bool = False


@dataclass
class _Notes:
    """What to tell the daemon once the lock is released (callbacks never run under our lock)."""

    changed: bool = False
    unsupported: list[tuple[str, Path, str]] = field(default_factory=list)


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def unsupported_reason(name: str, mode: int, folder: Path) -> str | None:
    """Why an entry cannot be delivered, in words for the admin; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return (
            f"'{name}' is a symbolic link. The agent never follows links, so that it only sends "
            f"files that were really dropped in {folder}. Copy the file itself into the folder instead."
        )
    if stat.S_ISDIR(mode):
        return (
            f"'{name}' is a folder. The agent does not look inside sub-folders; put the files "
            f"themselves directly into {folder}."
        )
    return (
        f"'{name}' is a {_special_kind(mode)}, not a regular file, so it cannot be sent. "
        f"Put a regular file into {folder} instead."
    )


class _EventHandler(FileSystemEventHandler):
    """Forwards watchdog events to the watcher; an exception here would kill the observer thread."""

    def __init__(self, watcher: FolderWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._handle_event(event)
        except Exception:
            logger.exception("Error while handling file event %r; the next rescan will catch up", event)


class _OverflowListener(logging.Handler):
    """watchdog only *logs* an inotify queue overflow (the lost events are gone): rescan at once."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            if "overflow" in record.getMessage().lower():
                self._on_overflow()


def _observer_alive(observer: BaseObserver) -> bool:
    """The dispatcher, every emitter and (for inotify) the reader thread must all be running."""
    if not observer.is_alive():
        return False
    emitters = list(observer.emitters)
    if not emitters or not all(emitter.is_alive() for emitter in emitters):
        return False
    reader = getattr(observer, "_inotify_fd", None)
    return not (isinstance(reader, threading.Thread) and not reader.is_alive())


def _dispose(observer: BaseObserver) -> None:
    """Stop an observer (dead or alive) without letting its failure stop us."""
    with contextlib.suppress(Exception):
        observer.stop()
    with contextlib.suppress(Exception):
        if observer.ident is not None:
            observer.join(timeout=_JOIN_SECONDS)


# ----------------------------------------------------------------------------------------------
# The watcher


class FolderWatcher:
    """Tracks the files of each route's folder until the daemon takes them.

    Thread model: watchdog's observer thread(s) deliver events, a checker thread re-stats candidates
    every `check_interval` and rescans every `rescan_seconds`, and the daemon calls :meth:`pending`
    and :meth:`take` from its own thread. One lock guards the candidate table; callbacks
    (`on_unsupported`, `on_change`) are always called after that lock is released.
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
        self._observer_setting = observer
        self._ignore = re.compile("|".join(fnmatch.translate(p) for p in ignore)) if ignore else None
        self._on_unsupported = on_unsupported
        self._on_change = on_change

        self._routes: dict[str, _Route] = {}
        self._route_by_dir: dict[str, str] = {}
        for name, folder in folders.items():
            absolute = Path(os.path.abspath(folder))
            if str(absolute) in self._route_by_dir:
                raise ValueError(
                    f"routes '{self._route_by_dir[str(absolute)]}' and '{name}' watch the "
                    f"same folder {absolute}; each folder can feed only one route"
                )
            self._route_by_dir[str(absolute)] = name
            self._routes[name] = _Route(name, absolute, kind=NATIVE)

        self._lock = threading.Lock()
        self._tracked: dict[Path, _Tracked] = {}
        self._taken: dict[Path, _Signature] = {}  # claimed by the daemon, still on disk
        self._unsupported: dict[Path, tuple[int, int]] = {}  # reported once per (inode, type)

        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._rescan_requested = False
        self._checker: threading.Thread | None = None
        self._overflow_listener: _OverflowListener | None = None
        self._started = False
        self.restarts = 0  # observer restarts after a death (self-health, for logs and tests)

        mounts = _read_mounts() if observer == "auto" else ""
        for route in self._routes.values():
            route.kind = self._decide_kind(route, mounts, quiet=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Observers first, then the initial scan (so nothing created in between is missed)."""
        if self._started:
            raise RuntimeError("FolderWatcher.start() was already called")
        self._started = True
        self._stopping.clear()
        self._overflow_listener = _OverflowListener(self.request_rescan)
        logging.getLogger("watchdog.observers.inotify_c").addHandler(self._overflow_listener)
        mounts = _read_mounts()
        for route in self._routes.values():
            self._start_observer(route, mounts)
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
            self._checker.join(timeout=_JOIN_SECONDS)
            if self._checker.is_alive():
                logger.warning(
                    "The watcher's checker thread did not stop within %.0f s (a hung network "
                    "share?); leaving it behind",
                    _JOIN_SECONDS,
                )
        for route in self._routes.values():
            if route.observer is not None:
                _dispose(route.observer)
                route.observer = None
        if self._overflow_listener is not None:
            logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._overflow_listener)
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
            found = [
                dataclasses.replace(t.candidate)
                for t in self._tracked.values()
                if route is None or t.candidate.route == route
            ]
        found.sort(key=lambda c: (c.first_seen, c.path.name))
        return found

    def take(self, paths: Iterable[Path]) -> None:
        """Forget these files: the daemon claimed them.

        We remember each one's signature until the file leaves the folder, so a rescan that runs
        before the daemon's rename does not offer it again; once it is gone (or replaced), the same
        name is a brand-new candidate.
        """
        with self._lock:
            for raw in paths:
                path = Path(os.path.abspath(raw))
                tracked = self._tracked.pop(path, None)
                if tracked is not None:
                    self._taken[path] = tracked.signature

    # ------------------------------------------------------------------ scanning

    def scan(self) -> None:
        """One synchronous full listing of every folder; new entries become candidates."""
        for route in self._routes.values():
            self._scan_route(route)

    def _scan_route(self, route: _Route) -> None:
        found: list[tuple[Path, os.stat_result]] = []
        present: set[Path] = set()
        try:
            with os.scandir(route.folder) as entries:
                for entry in entries:
                    if self._is_ignored(entry.name):
                        continue
                    path = route.folder / entry.name
                    present.add(path)
                    with contextlib.suppress(FileNotFoundError):
                        found.append((path, entry.stat(follow_symlinks=False)))
        except OSError as exc:
            route.missing = True
            logger.error(
                "Cannot read the watched folder %s of route '%s' (%s). Check that it exists "
                "and is mounted; the agent will retry every %.0f s.",
                route.folder,
                route.name,
                exc.strerror or exc,
                self.rescan_seconds,
            )
            return
        if route.missing:
            route.missing = False
            logger.info("The watched folder %s of route '%s' is readable again", route.folder, route.name)
        notes = _Notes()
        now = time.monotonic()
        with self._lock:
            for path, st in found:
                self._absorb(route.name, path, st, now, notes, event_change=False)
            for gone in [p for p in self._unsupported if p.parent == route.folder and p not in present]:
                del self._unsupported[gone]
        self._fire(notes)

    # ------------------------------------------------------------------ readiness

    def refresh(self) -> None:
        """One synchronous stat pass over every known candidate (and claimed file still present).

        One clock reading for the whole pass, taken before the first stat: every file was unchanged
        from its last_change until at least then, so readiness is never early (only, on a slow share,
        a little late).
        """
        with self._lock:
            tracked = list(self._tracked.items())
            taken = list(self._taken.items())
        started = time.monotonic()
        probes = [(path, entry, self._probe(path, entry.candidate.marker)) for path, entry in tracked]
        taken_probes = [(path, signature, self._probe(path, None)) for path, signature in taken]
        notes = _Notes()
        with self._lock:
            for path, entry, probe in probes:
                self._apply_probe(path, entry, probe, started, notes)
            for path, signature, probe in taken_probes:
                self._recheck_taken(path, signature, probe, notes)
        self._fire(notes)

    def wait_until_settled(self, timeout: float | None = None) -> None:
        """For `run`: scan, then block until every file found is ready or gone.

        Files arriving after the scan are not waited for (a busy SIS must not keep a cron run alive
        forever). On timeout it just returns; :meth:`pending` then shows which are still not ready.
        With `ready_suffix`, a file whose marker never appears is waited for until the timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self.scan()
        with self._lock:
            waiting = set(self._tracked)
        while True:
            self.refresh()
            with self._lock:
                left = [p for p in waiting if p in self._tracked and not self._tracked[p].candidate.ready]
            if not left:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                logger.info(
                    "%d file(s) were not ready when the wait ended (still being written, or "
                    "waiting for a ready marker), e.g. %s",
                    len(left),
                    left[0],
                )
                return
            pause = self.check_interval if remaining is None else min(self.check_interval, remaining)
            if self._stopping.wait(pause):
                return

    @staticmethod
    def _probe(path: Path, marker: Path | None) -> _Probe:
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return _Probe(None)
        except OSError as exc:
            logger.debug("Cannot stat %s (%s); will try again", path, exc)
            return _Probe(None, failed=True)
        return _Probe(st, marker_exists=marker is not None and os.path.lexists(marker))

    def _apply_probe(self, path: Path, entry: _Tracked, probe: _Probe, started: float, notes: _Notes) -> None:
        """Fold one stat taken at/after `started` into the table (lock held).

        Skipped if the entry was replaced or dropped meanwhile (an event got there first).
        """
        if self._tracked.get(path) is not entry or probe.failed:
            return
        st = probe.stat
        if st is None:
            self._drop(path, notes)
            return
        if not stat.S_ISREG(st.st_mode) or _signature(st) != entry.signature:
            if not self._absorb(entry.candidate.route, path, st, time.monotonic(), notes, event_change=False):
                return
            entry = self._tracked[path]
        candidate = entry.candidate
        still_for = started - candidate.last_change
        ready = probe.marker_exists if self.ready_suffix else still_for >= self.settle_seconds
        if ready != candidate.ready:
            candidate.ready = ready
            notes.changed = True
            logger.debug("%s is %s", path, "ready" if ready else "changing again")

    def _recheck_taken(self, path: Path, signature: _Signature, probe: _Probe, notes: _Notes) -> None:
        """A claimed file that left the folder, or was replaced, is forgotten for good."""
        if self._taken.get(path) != signature or probe.failed:
            return
        if probe.stat is None:
            del self._taken[path]
        elif _signature(probe.stat) != signature:
            del self._taken[path]
            route = self._route_by_dir.get(str(path.parent))
            if route is not None:
                self._absorb(route, path, probe.stat, time.monotonic(), notes, event_change=False)

    def _absorb(
        self, route: str, path: Path, st: os.stat_result, now: float, notes: _Notes, *, event_change: bool
    ) -> bool:
        """Record what one lstat showed (lock held). True if the path is a tracked candidate now."""
        reason = unsupported_reason(path.name, st.st_mode, self._routes[route].folder)
        if reason is not None:
            self._drop(path, notes)
            if str(path) in self._route_by_dir:
                return False  # another route's watched folder nested in this one: not ours to move
            identity = (st.st_ino, stat.S_IFMT(st.st_mode))
            if self._unsupported.get(path) != identity:
                self._unsupported[path] = identity
                notes.unsupported.append((route, path, reason))
            return False
        self._unsupported.pop(path, None)
        signature = _signature(st)
        taken = self._taken.get(path)
        if taken is not None:
            if taken == signature:
                return False
            del self._taken[path]
        entry = self._tracked.get(path)
        if entry is None or entry.signature[2] != signature[2]:
            if entry is not None:
                logger.debug("%s was replaced by a new file; starting over", path)
            self._tracked[path] = self._new_entry(route, path, signature, now)
            notes.changed = True
            return True
        if entry.signature != signature or event_change:
            entry.signature = signature
            entry.candidate.last_change = now
            if entry.candidate.ready:
                entry.candidate.ready = False
                notes.changed = True
        return True

    def _new_entry(self, route: str, path: Path, signature: _Signature, now: float) -> _Tracked:
        logger.debug("New file %s (route %s)", path, route)
        marker = self._marker_for(path) if self.ready_suffix else None
        candidate = Candidate(
            route=route,
            path=path,
            first_seen=now,
            last_change=now,
            arrived_at=datetime.now(timezone.utc),
            ready=False,
            marker=marker,
        )
        return _Tracked(candidate, signature)

    def _drop(self, path: Path, notes: _Notes) -> None:
        entry = self._tracked.pop(path, None)
        if entry is not None:
            notes.changed = True
            state = "after it was ready" if entry.candidate.ready else "before it was ready"
            logger.debug("%s disappeared %s; forgetting it", path, state)

    # ------------------------------------------------------------------ events

    def _handle_event(self, event: FileSystemEvent) -> None:
        """Observer thread: every event just makes us look at the named path(s) again."""
        if event.event_type in _NOISE_EVENTS:
            return
        changed = event.event_type in _CHANGE_EVENTS
        left = event.event_type in (EVENT_TYPE_DELETED, EVENT_TYPE_MOVED)
        self._examine(os.fsdecode(event.src_path), event_change=changed, left=left)
        if event.event_type == EVENT_TYPE_MOVED and event.dest_path:
            self._examine(os.fsdecode(event.dest_path), event_change=True)

    def _examine(self, raw_path: str, *, event_change: bool, left: bool = False) -> None:
        """Look at one path an event named. `left`: the event says this name left the folder."""
        route = self._route_by_dir.get(os.path.dirname(raw_path))
        if route is None:
            return  # the watched folder itself, or somewhere we do not watch
        path = Path(raw_path)
        if left:
            # A claimed file that left is forgotten for good, even if the same file is back already
            # (an admin moving it straight back from the archive to reprocess it).
            with self._lock:
                self._taken.pop(path, None)
        base = self._marker_base(path.name)
        if base is not None:
            self._recheck(path.with_name(base))
            return
        if self._is_ignored(path.name):
            return
        notes = _Notes()
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            with self._lock:
                self._drop(path, notes)
                self._taken.pop(path, None)
                self._unsupported.pop(path, None)
        except OSError as exc:
            logger.debug("Cannot stat %s after an event (%s); the next check will retry", path, exc)
            return
        else:
            with self._lock:
                self._absorb(route, path, st, time.monotonic(), notes, event_change=event_change)
        self._fire(notes)

    def _recheck(self, path: Path) -> None:
        """A ready marker came or went: re-evaluate its file now rather than at the next check."""
        with self._lock:
            entry = self._tracked.get(path)
        if entry is None:
            return
        started = time.monotonic()
        probe = self._probe(path, entry.candidate.marker)
        notes = _Notes()
        with self._lock:
            self._apply_probe(path, entry, probe, started, notes)
        self._fire(notes)

    # ------------------------------------------------------------------ names

    def _marker_for(self, path: Path) -> Path:
        return path.with_name(path.name + self.ready_suffix)

    def _marker_base(self, name: str) -> str | None:
        """For a ready marker's name, the name of the file it marks; else None."""
        if self.ready_suffix and name.endswith(self.ready_suffix) and len(name) > len(self.ready_suffix):
            return name[: -len(self.ready_suffix)]
        return None

    def _is_ignored(self, name: str) -> bool:
        """Never touched: reason files, ready markers and the configured `ignore` patterns."""
        if name.endswith(REASON_SUFFIX):
            return True
        if self.ready_suffix and name.endswith(self.ready_suffix):
            return True
        return self._ignore is not None and self._ignore.match(name) is not None

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

    # ------------------------------------------------------------------ observers and health

    def _decide_kind(self, route: _Route, mounts_text: str, *, quiet: bool = False) -> str:
        if self._observer_setting != "auto":
            return self._observer_setting
        kind = choose_observer(route.folder, mounts_text)
        if kind == POLLING and not quiet:
            mount = mount_of(route.folder, mounts_text)
            logger.info(
                "Route '%s': %s is on a %s share (%s), where inotify cannot see files written by "
                "other hosts; watching it by polling",
                route.name,
                route.folder,
                mount[1] if mount else "network",
                mount[0] if mount else "?",
            )
        return kind

    def _polling_interval(self) -> float:
        """No faster than settling needs: listing a 10k-file folder every 0.25 s costs a third of a core."""
        return min(1.0, max(0.1, self.settle_seconds / 2))

    def _make_observer(self, kind: str) -> BaseObserver:
        if kind == POLLING:
            # lstat, so the poller never follows a symlink dropped in the folder.
            return PollingObserverVFS(os.lstat, os.scandir, polling_interval=self._polling_interval())
        return Observer()

    def _start_observer(self, route: _Route, mounts_text: str) -> bool:
        """Start watching one folder; on failure log why and leave it for the next rescan."""
        if not route.folder.is_dir():
            return False  # scan() reports the missing folder
        kind = self._decide_kind(route, mounts_text)
        try:
            route.observer = self._launch(route, kind)
        except OSError as exc:
            if kind != NATIVE or exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOSPC):
                logger.error(
                    "Cannot watch %s for route '%s' (%s); the agent will retry every %.0f s",
                    route.folder,
                    route.name,
                    exc,
                    self.rescan_seconds,
                )
                return False
            logger.warning(
                "inotify limit reached while watching %s (%s); polling it instead. Raise "
                "fs.inotify.max_user_watches / max_user_instances to use inotify.",
                route.folder,
                exc,
            )
            kind = POLLING
            try:
                route.observer = self._launch(route, kind)
            except OSError as again:
                logger.error(
                    "Cannot watch %s for route '%s' (%s); the agent will retry every %.0f s",
                    route.folder,
                    route.name,
                    again,
                    self.rescan_seconds,
                )
                return False
        route.kind = kind
        logger.debug("Watching %s for route '%s' with the %s observer", route.folder, route.name, kind)
        return True

    def _launch(self, route: _Route, kind: str) -> BaseObserver:
        observer = self._make_observer(kind)
        try:
            observer.schedule(_EventHandler(self), str(route.folder), recursive=False)
            observer.start()
        except BaseException:
            _dispose(observer)
            raise
        return observer

    def _heal_observers(self, *, retry_missing: bool) -> bool:
        """Restart observers that died; retry folders that could not be watched.

        True when a rescan should follow: an observer died (events were lost) or one (re)started.
        """
        needs_scan = False
        mounts: str | None = None
        for route in self._routes.values():
            if route.observer is not None and _observer_alive(route.observer):
                continue
            if route.observer is None and not retry_missing:
                continue
            if route.observer is not None:
                logger.warning(
                    "The %s observer watching %s (route '%s') stopped unexpectedly; restarting "
                    "it and rescanning the folder",
                    route.kind,
                    route.folder,
                    route.name,
                )
                _dispose(route.observer)
                route.observer = None
                self.restarts += 1
                needs_scan = True
            if mounts is None:
                mounts = _read_mounts() if self._observer_setting == "auto" else ""
            needs_scan = self._start_observer(route, mounts) or needs_scan
        return needs_scan

    def _run_checker(self) -> None:
        """Checker thread: re-stat candidates, keep observers alive, rescan periodically."""
        next_rescan = time.monotonic() + self.rescan_seconds
        while not self._stopping.is_set():
            self._wake.wait(self.check_interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                due = time.monotonic() >= next_rescan or self._rescan_requested
                if self._heal_observers(retry_missing=due) or due:
                    self._rescan_requested = False
                    next_rescan = time.monotonic() + self.rescan_seconds
                    self.scan()
                self.refresh()
            except Exception:
                logger.exception("The watcher's check failed; trying again in %.1f s", self.check_interval)
