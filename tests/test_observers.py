"""What watches a folder: our poller, watchdog's inotify observer, health and restarts (real threads)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

from agent.mounts import choose_observer, read_mounts
from agent.observers import (
    MOVE_PAIRING_SECONDS,
    FolderObservers,
    FolderPoller,
    OverflowListener,
    WatchedFolder,
    dispose,
    is_alive,
    launch,
)
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


class Events:
    """Collects watchdog events (they arrive on the observer's thread)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event: FileSystemEvent) -> None:
        with self._lock:
            self.paths.append(str(event.src_path))

    def saw(self, path: Path) -> bool:
        with self._lock:
            return str(path) in self.paths


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[list[FolderObservers]]:
    """FolderObservers made by a test, always stopped."""
    made: list[FolderObservers] = []
    yield made
    for observers in made:
        observers.stop_all()


def test_poller_polls_until_stopped_and_survives_a_failing_poll(tmp_path: Path) -> None:
    calls: list[int] = []

    def poll() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the share hiccuped")

    poller = FolderPoller(poll, 0.01, tmp_path)
    poller.start()
    wait_for(lambda: len(calls) >= 3, "three polls, the first of which failed")
    assert is_alive(poller)
    dispose(poller)
    assert not poller.is_alive() and not is_alive(poller)


def test_native_observer_delivers_events_survives_a_failing_handler_and_is_disposed(tmp_path: Path) -> None:
    events = Events()
    failed = threading.Event()

    def on_event(event: FileSystemEvent) -> None:
        if str(event.src_path).endswith("first.txt") and not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in the handler")
        events(event)

    observer = launch("native", tmp_path, on_event=on_event, poll=lambda: None, interval=1.0)
    assert not isinstance(observer, FolderPoller)
    assert InotifyMoveEventGrouper.delay <= MOVE_PAIRING_SECONDS, "moves out are not held back 0.5 s"
    (tmp_path / "first.txt").write_text("x")
    wait_for(failed.is_set, "the failing handler call")
    (tmp_path / "second.txt").write_text("x")
    wait_for(lambda: events.saw(tmp_path / "second.txt"), "an event after the handler failed")
    assert is_alive(observer)

    next(iter(observer.emitters)).stop()
    wait_for(lambda: not is_alive(observer), "a stopped emitter to count as dead")
    dispose(observer)
    assert not observer.is_alive()


def test_overflow_listener_calls_back_only_for_overflow_records() -> None:
    calls: list[int] = []
    listener = OverflowListener(lambda: calls.append(1))
    listener.install()
    try:
        inotify_logger = logging.getLogger("watchdog.observers.inotify_c")
        inotify_logger.warning("something else went wrong")
        inotify_logger.warning("Inotify queue overflowed; filesystem events were lost")
    finally:
        listener.remove()
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed again")
    assert calls == [1]


def test_each_setting_gives_its_observer_and_auto_follows_the_mounts(
    tmp_path: Path, folders: list[FolderObservers]
) -> None:
    for setting in ("native", "polling", "auto"):
        watched = WatchedFolder(setting, tmp_path / setting)
        watched.folder.mkdir()
        observers = FolderObservers(
            [watched], setting, on_event=lambda e: None, poll=lambda w: None, polling_interval=0.1, retry_seconds=60
        )
        folders.append(observers)
        observers.start_all()
        expected = choose_observer(watched.folder, read_mounts()) if setting == "auto" else setting
        assert watched.kind == expected
        assert watched.observer is not None and is_alive(watched.observer)
        assert isinstance(watched.observer, FolderPoller) == (expected == "polling")


def test_a_dead_poller_is_restarted_and_a_missing_folder_is_retried_only_when_asked(
    tmp_path: Path, folders: list[FolderObservers]
) -> None:
    polled: list[str] = []
    restarted: list[str] = []
    present = WatchedFolder("present", tmp_path / "present")
    present.folder.mkdir()
    late = WatchedFolder("late", tmp_path / "late")
    observers = FolderObservers(
        [present, late],
        "polling",
        on_event=lambda e: None,
        poll=lambda w: polled.append(w.name),
        polling_interval=0.01,
        retry_seconds=60,
    )
    folders.append(observers)
    observers.start_all()
    assert late.observer is None, "a missing folder is left for a retry"
    old = present.observer
    assert old is not None
    dispose(old)  # as if its thread had died

    assert observers.heal(retry_missing=False, on_restart=restarted.append) is True
    assert restarted == ["present"] and observers.restarts == 1
    assert present.observer is not None and present.observer is not old and is_alive(present.observer)
    assert late.observer is None, "not retried on a mere health check"
    polled.clear()
    wait_for(lambda: "present" in polled, "the new poller to poll")

    late.folder.mkdir()
    assert observers.heal(retry_missing=True, on_restart=restarted.append) is True
    assert late.observer is not None and restarted == ["present"]
    assert observers.heal(retry_missing=True, on_restart=restarted.append) is False, "all healthy"


# Runs in a child process: it exhausts its own file descriptor limit so that inotify_init fails.
FD_LIMIT_CHILD = textwrap.dedent(
    """
    import json, logging, os, resource, sys, threading
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from agent.observers import FolderObservers, WatchedFolder
    logging.basicConfig(level=logging.WARNING)
    polled = threading.Event()
    watched = WatchedFolder("r", Path(sys.argv[2]))
    observers = FolderObservers([watched], "native", on_event=lambda e: None, poll=lambda w: polled.set(),
                                polling_interval=0.01, retry_seconds=60)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    fillers = []
    try:
        while True:
            fillers.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    observers.start_all()
    for fd in fillers:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print(json.dumps({"kind": watched.kind, "polled": polled.wait(20)}), flush=True)
    observers.stop_all()
    """
)


def test_inotify_limit_falls_back_to_polling(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FD_LIMIT_CHILD, str(ROOT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == {"kind": "polling", "polled": True}
    assert "inotify limit reached" in done.stderr and "polling it instead" in done.stderr
