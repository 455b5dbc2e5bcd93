"""Writers that pause: a claimed file whose size or mtime still changes is not what the SIS meant to send.

Why: readiness (`agent.readiness`) waits until a file is still for `settle_seconds` and, on native
observers, until its writer closed it. A writer the agent cannot see (another host on a network
share, the polling observer, `run` from cron, a writer that opened the file before the agent
started) that pauses longer than `settle_seconds` still has its half-written file claimed. The
rename into processing/ does not stop it: it writes on into the same file. So the size and mtime
seen at the claim (journaled: `claimed_size`, `claimed_mtime_ns`) are compared twice more:

* **Before sending.** A file that changed, or that another program still holds open for writing
  (asked of the kernel, where it can tell: :func:`open_for_writing`), is not sent as it is: the
  agent waits until it is closed and still for `settle_seconds` (the writer finished), journals the
  new size and mtime, and the pipeline inspects it again and sends it whole. Nothing had been sent
  yet, so nothing is doubled. One that keeps changing for `hold_seconds` is HELD (not sent) with a
  reason; one only held open, unchanged, that long is sent (its writer is taken as done).
* **After the upload** (when the destination has answered). If the file changed after what was
  sent, the destination has an incomplete copy: the file is not reported SUCCESS but FAILED,
  "changed while it was sent", with both sizes, and its dependents are held. It is archived (it was
  delivered) and the email says to move it back to send it whole.

What this cannot see: a writer that changes bytes without changing the size or the mtime (an mmap,
a clock set back), and one that goes on only after the check that follows the answer: it then
writes into the archived copy after the report went out (the admin guide says how to avoid this).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agent.batchitem import BatchItem
from agent.clock import Clock
from agent.errors import StopRequested
from agent.journal import Journal
from agent.journal_schema import FileRecord
from agent.profiles import profile_for
from agent.records import Result, Status
from agent.wording import format_duration, format_size
from agent.wording_files import changed_while_sent, still_changing

log = logging.getLogger(__name__)

# (size, mtime_ns): what "unchanged since the claim" means (the inode is the same: it was renamed).
Signature = tuple[int, int]
HOLD_FACTOR = 30  # a writer may go on for 30 × settle_seconds after the claim…
MIN_HOLD_SECONDS = 300.0  # …and at least 5 minutes, before the file is held instead


def open_for_writing(path: Path) -> bool | None:
    """Whether another program holds the file open for writing (a writer that paused with it open),
    asked of the kernel: Linux refuses a read lease on a file anyone has open for writing. None when
    it cannot tell: not Linux, a network filesystem, or the agent is neither the file's owner nor
    privileged. The lease is dropped at once; its break signal, should a writer open the file in
    that instant, is SIGWINCH, which a daemon ignores."""
    if not hasattr(fcntl, "F_SETLEASE"):
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(descriptor, fcntl.F_SETSIG, signal.SIGWINCH)
        fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return True if exc.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(descriptor)


def signature(path: Path) -> Signature | None:
    """(size, mtime_ns) of the file, or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class BeforeSend:
    """The check before sending: `changed` (the writer went on: inspect again), `held` (why not sent)."""

    changed: bool = False
    held: str | None = None


def _at_claim(record: FileRecord) -> Signature | None:
    """What the journal says was claimed (or, after a writer went on, is being sent)."""
    if record.claimed_size is None or record.claimed_mtime_ns is None:
        return None  # claimed by an agent that did not record it
    return (record.claimed_size, record.claimed_mtime_ns)


class WriteCheck:
    """The two checks for one configuration; `clock` paces the wait (tests pass a fake one)."""

    def __init__(self, journal: Journal, clock: Clock, settle_seconds: float, stop: threading.Event) -> None:
        self.journal = journal
        self.clock = clock
        self.settle_seconds = settle_seconds
        self.hold_seconds = max(MIN_HOLD_SECONDS, HOLD_FACTOR * settle_seconds)
        self.stop = stop

    def before_send(self, item: BatchItem) -> BeforeSend:
        """May the file go, and did its writer change it since the claim (then inspect it again)?
        Raises StopRequested when the agent stops meanwhile."""
        outcome, at_claim = item.outcome, _at_claim(item.record)
        now = signature(item.path)
        writing = open_for_writing(item.path) is True
        if now is None or ((at_claim is None or now == at_claim) and not writing):
            return BeforeSend()
        log.warning(
            "%s %s after it was claimed: its writer had only paused; waiting until it is closed and still "
            "for %g s before sending it whole",
            outcome.name,
            "is still open for writing" if writing else f"changed ({at_claim and at_claim[0]} → {now[0]} bytes)",
            self.settle_seconds,
        )
        settled = self._wait_until_still(item.path, now)
        if settled is None:
            waited = format_duration(self.hold_seconds)
            log.error("%s kept changing for %s after it was claimed; holding it", outcome.name, waited)
            return BeforeSend(changed=True, held=still_changing(waited))
        self.journal.claim_resettled(item.file_id, size=settled[0], mtime_ns=settled[1])  # what is sent
        item.record = replace(item.record, size=settled[0], claimed_size=settled[0], claimed_mtime_ns=settled[1])
        outcome.sha256 = None  # of the part seen at the claim: the check (S3) or the upload (Learn) hashes it again
        return BeforeSend(changed=True)

    def ready_to_send(self, item: BatchItem, reinspect: Callable[[], None], hold: Callable[[str], None]) -> bool:
        """The pipeline's hook: a file its writer changed after the claim is inspected again once
        still (`reinspect`), or held (`hold(reason)`); True when it may be sent now."""
        check = self.before_send(item)
        if check.held is not None:
            hold(check.held)
        elif check.changed:
            reinspect()
        return item.outcome.finished_at is None

    def after_send(self, item: BatchItem, result: Result) -> Result:
        """The destination's result, or FAILED "changed while it was sent" when the file is no longer
        what was sent (size or mtime changed since the check before sending)."""
        outcome = item.outcome
        sent = _at_claim(item.record)  # as claimed, or as it was once still again (journaled and kept alike)
        now = signature(item.path)
        if sent is None or now is None or now == sent:
            return result
        log.error(
            "%s changed while it was sent: %d bytes went out, the file now has %d; not reported %s",
            outcome.name,
            sent[0],
            now[0],
            result.status.value,
        )
        outcome.changed_in_flight = True
        destination = profile_for(outcome.target_type).destination
        words = changed_while_sent(outcome.name, destination, format_size(sent[0]), format_size(now[0]), result.status)
        return replace(result, status=Status.FAILED, message=words)

    def _wait_until_still(self, path: Path, seen: Signature) -> Signature | None:
        """Poll until the file is closed by its writer and has not changed for settle_seconds. After
        hold_seconds: None if it still changes; if it only stays open, unchanged, its writer is taken
        as done (with a warning), as readiness does with write_hold_seconds."""
        step = min(1.0, max(0.02, self.settle_seconds / 4))
        started = changed_at = self.clock.monotonic()
        while self.clock.monotonic() - started < self.hold_seconds:
            if self.clock.sleep(step, self.stop):
                raise StopRequested()
            now = signature(path)
            if now is None:
                return None
            if now != seen:
                seen, changed_at = now, self.clock.monotonic()
            elif self.clock.monotonic() - changed_at >= self.settle_seconds and not open_for_writing(path):
                return seen
        if self.clock.monotonic() - changed_at < self.settle_seconds:
            return None
        still = format_duration(self.clock.monotonic() - changed_at)
        log.warning("%s is still open for writing but unchanged for %s; taking its writer as done", path.name, still)
        return seen
