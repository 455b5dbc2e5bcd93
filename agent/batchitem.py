"""One file in a batch as the pipeline carries it, and how a batch was asked for.

Apart from `agent.pipeline` so the steps around it (`agent.filing`) can share it without importing
the pipeline, and so a file's end read back from the journal (`decided`) is built in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import failpoints
from agent.clock import utcnow
from agent.errors import JournalError, StopRequested, describe
from agent.feeds import depends_on, order_key
from agent.inspection import Inspection
from agent.journal_schema import TERMINAL_STATES, FileRecord
from agent.records import FileOutcome, Progress, Receipt, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchContext:
    """How a batch was asked for: by the watcher or cron (the defaults), or by an admin (`post`)."""

    force: bool = False  # send even if the refresh guard would hold it
    keep: bool = False  # a manual post that leaves the file where it is (no archive, no failed/)
    object_override: str | None = None  # `post --object`
    operation_override: str | None = None  # `post --operation`


AUTOMATIC = BatchContext()


@dataclass
class BatchItem:
    """A file moving through the batch, with what we learned about it so far."""

    record: FileRecord
    path: Path
    outcome: FileOutcome
    inspection: Inspection | None = None
    receipt: Receipt | None = None
    move_error: OSError | None = None  # why its folder refused it (it stays in processing/ meanwhile)

    @property
    def rank(self) -> int:
        return order_key(self.outcome.object)

    @property
    def file_id(self) -> int:
        return self.record.id

    def arrival(self) -> float:
        """When the SIS finished writing it (mtime): of two exports of one type, the newer goes last."""
        try:
            return self.path.stat().st_mtime
        except OSError:
            return (self.record.arrived_at or self.record.claimed_at or utcnow()).timestamp()


def once(mark: Callable[[], None], point: str) -> Callable[[], None]:
    """A journal mark that runs once however often it is called (the reporter, then the pipeline)."""
    done: list[bool] = []

    def run() -> None:
        if not done:
            done.append(True)
            mark()
            failpoints.hit(point)

    return run


def decided(outcome: FileOutcome, record: FileRecord) -> None:
    """A file whose end the journal already holds (recovery): its status, words, counts and place."""
    outcome.status = Status(record.status) if record.status else Status.FAILED
    outcome.message = record.message or ""
    outcome.finished_at = record.finished_at or record.updated_at
    outcome.held_by = record.held_by
    if record.state in TERMINAL_STATES:
        outcome.final_path = Path(record.current_path) if record.current_path else None
    if record.completed is not None or record.queued is not None:
        outcome.progress = Progress(
            queued=record.queued or 0,
            completed=record.completed or 0,
            warnings=record.warnings or 0,
            errors=record.errors or 0,
        )


def isolated(item: BatchItem, advance: Callable[[], None], left: list[BatchItem]) -> BaseException | None:
    """One file's step, isolated: its error is logged in one line and the file stays in processing/
    (put in `left`, as is any file that depends on one there), so the rest of the batch goes on; the
    error is returned (its traceback is the failure episode's to show, once). A stop, or a journal
    that cannot be written, ends the batch as it came: nothing else could go on either."""
    if any(depends_on(item.outcome.object, other.outcome.object) for other in left):
        left.append(item)  # its dependency is retried first: it waits in processing/ too
        return None
    try:
        advance()
    except (StopRequested, JournalError):
        raise
    except Exception as exc:
        log.error("left in processing/: %s: %s", item.outcome.name, describe(exc))
        left.append(item)
        return exc
    return None
