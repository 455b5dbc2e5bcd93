"""What watches one folder: watchdog's inotify observer, or our own poller. Start, health, stop.

* **native**: watchdog's inotify `Observer`; every event goes to one callback, and an exception in
  that callback is logged rather than allowed to kill watchdog's thread.
* **polling** (network shares): *not* watchdog's `PollingObserver`. That one lstat()s every entry of
  the folder at every interval, ignored junk included: with 10,000 ignored files in a drop folder it
  cost about 17 % of a core, forever. :class:`FolderPoller` instead calls the watcher's own scan at
  each interval, which drops ignored names before any stat (`os.scandir` lists names without
  stat'ing them) and so costs almost nothing per ignored file. The scan feeds the same table as
  events and rescans do, so correctness is the scan's: new, changed and vanished files are all
  seen, one interval late at most.
* **Moves out are not held back.** watchdog holds each inotify IN_MOVED_FROM for 0.5 s, hoping to
  pair it with an IN_MOVED_TO, and its queue is first-in first-out: every later event of the folder
  waits behind it. Each claim by the daemon (a rename out of the folder) is such a move, so files
  arriving just after a claim were seen up to 0.5 s late. We do not need the pairing (to us a move
  is "this name left, that name arrived", paired or not), so :func:`launch` shortens that wait.
* **Overflow**: watchdog only *logs* an inotify queue overflow (the lost events are gone for good);
  :class:`OverflowListener` turns that log record into a call, so the watcher rescans at once.
* **Health**: :class:`FolderObservers` restarts a watch whose thread died (the events it lost are
  why the watcher then rescans), falls back to polling when the inotify limits are reached, and
  retries a folder that could not be watched (an NFS share that mounts late) at every rescan.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

try:  # watchdog >= 7; older versions name it InotifyBuffer and keep their 0.5 s
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
except ImportError:  # pragma: no cover - depends on the installed watchdog
    InotifyMoveEventGrouper = None  # type: ignore[assignment,misc]

from agent.mounts import NATIVE, POLLING, choose_observer, mount_of, read_mounts

logger = logging.getLogger(__name__)

JOIN_SECONDS = 10.0
# How long watchdog may hold a move-out to pair it (its default is 0.5 s): both halves of one rename
# arrive in the same inotify read, microseconds apart, so pairing still works within the folder.
MOVE_PAIRING_SECONDS = 0.01
INOTIFY_LOGGER = "watchdog.observers.inotify_c"


class FolderPoller(threading.Thread):
    """Calls `poll` every `interval` seconds (after each poll ends) until stopped.

    The first call is one interval after start: the watcher scans once itself right after starting.
    A failing poll is logged and tried again at the next interval; it never ends the thread.
    """

    def __init__(self, poll: Callable[[], None], interval: float, folder: Path) -> None:
        super().__init__(name=f"feed-agent-poll {folder}", daemon=True)
        self.interval = interval
        self._poll = poll
        self._folder = folder
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self._poll()
            except Exception:
                logger.exception("Polling %s failed; trying again in %.1f s", self._folder, self.interval)

    def stop(self) -> None:
        self._stopping.set()


# Whatever watches one folder.
Watch = BaseObserver | FolderPoller


class _Forwarder(FileSystemEventHandler):
    """Hands each watchdog event to the watcher; an exception here would kill the observer thread."""

    def __init__(self, on_event: Callable[[FileSystemEvent], None]) -> None:
        super().__init__()
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            logger.exception("Error while handling file event %r; the next rescan will catch up", event)


class OverflowListener(logging.Handler):
    """Calls `on_overflow` when watchdog logs that the inotify queue overflowed (events were lost)."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            if "overflow" in record.getMessage().lower():
                self._on_overflow()

    def install(self) -> None:
        logging.getLogger(INOTIFY_LOGGER).addHandler(self)

    def remove(self) -> None:
        logging.getLogger(INOTIFY_LOGGER).removeHandler(self)


def launch(
    kind: str,
    folder: Path,
    *,
    on_event: Callable[[FileSystemEvent], None],
    poll: Callable[[], None],
    interval: float,
) -> Watch:
    """Start watching `folder`: inotify events to `on_event`, or `poll` every `interval` seconds.

    Raises OSError when inotify cannot watch it (EMFILE/ENFILE/ENOSPC: the inotify limits).
    """
    if kind == POLLING:
        poller = FolderPoller(poll, interval, folder)
        poller.start()
        return poller
    if InotifyMoveEventGrouper is not None:
        InotifyMoveEventGrouper.delay = min(InotifyMoveEventGrouper.delay, MOVE_PAIRING_SECONDS)
    observer = Observer()
    try:
        observer.schedule(_Forwarder(on_event), str(folder), recursive=False)
        observer.start()
    except BaseException:
        dispose(observer)
        raise
    return observer


def is_alive(watch: Watch) -> bool:
    """For inotify: the dispatcher, every emitter and the reader thread must all be running."""
    if isinstance(watch, FolderPoller):
        return watch.is_alive()
    if not watch.is_alive():
        return False
    emitters = list(watch.emitters)
    if not emitters or not all(emitter.is_alive() for emitter in emitters):
        return False
    reader = getattr(watch, "_inotify_fd", None)
    return not (isinstance(reader, threading.Thread) and not reader.is_alive())


def dispose(watch: Watch) -> None:
    """Stop a watch (dead or alive) and wait for its thread, without letting its failure stop us."""
    with contextlib.suppress(Exception):
        watch.stop()
    with contextlib.suppress(Exception):
        if watch.ident is not None and watch is not threading.current_thread():
            watch.join(timeout=JOIN_SECONDS)


# ----------------------------------------------------------------------------------------------
# Starting, checking and restarting the watch of each folder


@dataclass
class WatchedFolder:
    """One route's folder and what watches it."""

    name: str  # the route
    folder: Path
    kind: str = NATIVE
    observer: Watch | None = None
    missing: bool = False  # the last listing failed (logged once per outage by the poller)


class FolderObservers:
    """Starts a watch on each folder, restarts those that die, stops them all.

    `setting` is the configured observer ("auto", "native", "polling"); "auto" polls folders on
    network filesystems. `poll(folder)` is what a poller calls each `polling_interval`.
    """

    def __init__(
        self,
        folders: Iterable[WatchedFolder],
        setting: str,
        *,
        on_event: Callable[[FileSystemEvent], None],
        poll: Callable[[WatchedFolder], None],
        polling_interval: float,
        retry_seconds: float,
    ) -> None:
        self.folders = list(folders)
        self.setting = setting
        self.polling_interval = polling_interval
        self.restarts = 0  # watches restarted after a death (self-health, for logs and tests)
        self._on_event = on_event
        self._poll = poll
        self._retry_seconds = retry_seconds
        mounts = read_mounts() if setting == "auto" else ""
        for watched in self.folders:
            watched.kind = self._decide_kind(watched, mounts, quiet=True)

    def start_all(self) -> None:
        mounts = read_mounts()
        for watched in self.folders:
            self._start(watched, mounts)

    def stop_all(self) -> None:
        for watched in self.folders:
            if watched.observer is not None:
                dispose(watched.observer)
                watched.observer = None

    def heal(self, *, retry_missing: bool, on_restart: Callable[[str], None]) -> bool:
        """Restart watches that died (`on_restart(route)` first: their events were lost); with
        `retry_missing`, retry folders that could not be watched. True when a rescan should follow."""
        needs_scan = False
        mounts: str | None = None
        for watched in self.folders:
            if watched.observer is not None and is_alive(watched.observer):
                continue
            if watched.observer is None and not retry_missing:
                continue
            if watched.observer is not None:
                logger.warning(
                    "The %s observer watching %s (route '%s') stopped unexpectedly; restarting it and "
                    "rescanning the folder",
                    watched.kind,
                    watched.folder,
                    watched.name,
                )
                dispose(watched.observer)
                watched.observer = None
                self.restarts += 1
                needs_scan = True
                on_restart(watched.name)
            if mounts is None:
                mounts = read_mounts() if self.setting == "auto" else ""
            needs_scan = self._start(watched, mounts) or needs_scan
        return needs_scan

    def _decide_kind(self, watched: WatchedFolder, mounts_text: str, *, quiet: bool = False) -> str:
        if self.setting != "auto":
            return self.setting
        kind = choose_observer(watched.folder, mounts_text)
        if kind == POLLING and not quiet:
            mount = mount_of(watched.folder, mounts_text)
            logger.info(
                "Route '%s': %s is on a %s share (%s), where inotify cannot see files written by "
                "other hosts; watching it by polling",
                watched.name,
                watched.folder,
                mount[1] if mount else "network",
                mount[0] if mount else "?",
            )
        return kind

    def _launch(self, watched: WatchedFolder, kind: str) -> Watch:
        return launch(
            kind,
            watched.folder,
            on_event=self._on_event,
            poll=lambda: self._poll(watched),
            interval=self.polling_interval,
        )

    def _start(self, watched: WatchedFolder, mounts_text: str) -> bool:
        """Start watching one folder; on failure log why and leave it for the next retry."""
        if not watched.folder.is_dir():
            return False  # the scan reports the missing folder
        kind = self._decide_kind(watched, mounts_text)
        try:
            try:
                watched.observer = self._launch(watched, kind)
            except OSError as exc:
                if kind != NATIVE or exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOSPC):
                    raise
                logger.warning(
                    "inotify limit reached while watching %s (%s); polling it instead. Raise "
                    "fs.inotify.max_user_watches / max_user_instances to use inotify.",
                    watched.folder,
                    exc,
                )
                kind = POLLING
                watched.observer = self._launch(watched, kind)
        except OSError as exc:
            logger.error(
                "Cannot watch %s for route '%s' (%s); the agent will retry every %.0f s",
                watched.folder,
                watched.name,
                exc,
                self._retry_seconds,
            )
            return False
        watched.kind = kind
        logger.debug("Watching %s for route '%s' with the %s observer", watched.folder, watched.name, kind)
        return True
