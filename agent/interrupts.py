"""Let a stop signal break out of a blocking network call, and only there.

Why: the service manager sends SIGTERM and, 30 s later, SIGKILL. An upload waiting on a slow server
sits in a blocking socket call for up to the read timeout (minutes), and Python retries an
interrupted system call after running the signal handler (PEP 475), so setting a stop flag alone
would not end it. The daemon's handler therefore *raises* `StopRequested`, but only while the main
thread is inside an `abortable()` region (the upload call itself): everywhere else a stop is a flag
the loop checks between steps, so a journal write or a file move is never cut in half.

`deferred()` marks a short stretch inside an abortable region that must finish (the journal write
that says "the whole body went out"); a signal arriving there is raised when the stretch ends.
Everything here concerns the main thread only (signal handlers run there).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from agent.errors import StopRequested


class _State:
    depth = 0  # nesting of abortable() in the main thread
    deferring = 0  # nesting of deferred()
    pending = False  # a stop arrived while deferring


_STATE = _State()
_MESSAGE = "feed-agent is stopping: the upload in progress was abandoned"


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def abortable() -> Iterator[None]:
    """A region a stop signal may cut short (a blocking upload). No effect outside the main thread."""
    if not _main():
        yield
        return
    _STATE.depth += 1
    try:
        yield
    finally:
        _STATE.depth -= 1
        if _STATE.depth == 0:
            _STATE.pending = False


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
    raise StopRequested(_MESSAGE)
