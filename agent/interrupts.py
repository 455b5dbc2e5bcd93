"""Let a stop signal break out of a blocking network call, and only there.

Why: the service manager sends SIGTERM and, 30 s later, SIGKILL. An upload waiting on a slow server
sits in a blocking socket call for up to the read timeout (minutes), and Python retries an
interrupted system call after running the signal handler (PEP 475), so setting a stop flag alone
would not end it. The daemon's handler therefore *raises* `StopRequested`, but only while the main
thread is inside an `abortable()` region (the upload call itself): everywhere else a stop is a flag
the loop checks between steps, so a journal write or a file move is never cut in half.

`deferred()` marks a short stretch inside an abortable region that must finish (the journal write
that says "the whole body went out"); a signal arriving there is raised when the stretch ends.
Everything here concerns the main thread only (signal handlers run there). `watch`, `run` and `post`
install the same handlers through `stop_on_signals()`, so a SIGTERM from systemd or a Ctrl-C at the
terminal ends each of them the same way: within seconds, with the journal saying where the file is.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from agent.errors import StopRequested

log = logging.getLogger(__name__)


class UploadCut(BaseException):
    """What a stop raises inside `abortable(through_libraries=True)`. Some libraries catch every
    Exception of a send and retry it (botocore wraps it in a retryable connection error and starts the
    upload again), so there the stop travels as a BaseException, like KeyboardInterrupt, and the
    caller turns it back into StopRequested at its own boundary (`cut_to_stop`)."""


class _State:
    depth = 0  # nesting of abortable() in the main thread
    deferring = 0  # nesting of deferred()
    pending = False  # a stop arrived while deferring
    cut: type[BaseException] = StopRequested  # what a stop raises in the current abortable region


_STATE = _State()
_MESSAGE = "feed-agent is stopping: the upload in progress was abandoned"


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def abortable(*, through_libraries: bool = False) -> Iterator[None]:
    """A region a stop signal may cut short (a blocking upload). No effect outside the main thread.

    `through_libraries`: the stop is raised as `UploadCut` (a BaseException) so a library that catches
    and retries every Exception lets it through; wrap the region in `cut_to_stop()`."""
    if not _main():
        yield
        return
    _STATE.depth += 1
    outer, _STATE.cut = _STATE.cut, UploadCut if through_libraries else StopRequested
    try:
        yield
    finally:
        _STATE.depth -= 1
        _STATE.cut = outer
        if _STATE.depth == 0:
            _STATE.pending = False


@contextmanager
def cut_to_stop() -> Iterator[None]:
    """Around an `abortable(through_libraries=True)` region: an UploadCut leaves it as StopRequested."""
    try:
        yield
    except UploadCut:
        raise StopRequested(_MESSAGE) from None


@contextmanager
def deferred() -> Iterator[None]:
    """Inside an abortable region: finish this stretch first, then honour a stop that came meanwhile."""
    if not _main() or _STATE.depth == 0:
        yield
        return
    _STATE.deferring += 1
    try:
        yield
    finally:
        _STATE.deferring -= 1
    if _STATE.deferring == 0 and _STATE.pending:
        _STATE.pending = False
        raise StopRequested(_MESSAGE)


def interrupt_if_abortable() -> None:
    """Called by a signal handler (main thread): raise StopRequested when inside an abortable region."""
    if _STATE.depth == 0:
        return
    if _STATE.deferring:
        _STATE.pending = True
        return
    raise _STATE.cut(_MESSAGE)


@contextmanager
def stop_on_signals(stop: threading.Event, *, wake: Callable[[], None] | None = None) -> Iterator[None]:
    """While inside: SIGTERM and SIGINT set `stop` (loops end between steps, waits end at once), cut a
    blocked upload short, and call `wake` (a sleeping loop looks at `stop` now). A second signal ends
    the process at once: the journal then says where each file was, and the next start (or `post`)
    takes it up. The previous handlers come back on leaving (a test runner's own, for one)."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal: stopping now (`feed-agent status` shows where each file was left)")
            os._exit(1)
        name = signal.Signals(signum).name
        log.info("signal %s: finishing the current step, then stopping (send again to force)", name)
        stop.set()
        if wake is not None:
            wake()
        interrupt_if_abortable()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
