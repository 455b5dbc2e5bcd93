"""Learn's record log of a delivered file, read after its end and kept beside its archived copy.

Apart from the pipeline because it is its own errand (a REST client, a CSV beside the archive, a
journal row) that must never block the batch: a log that cannot be read leaves the report saying
why its details are missing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from agent import archive
from agent.batchitem import BatchItem
from agent.errors import StopRequested
from agent.journal import Journal
from agent.records import RecordLog, Status
from agent.targets.base import RecordLogSource, Target

log = logging.getLogger(__name__)

RECORD_LOG_STATUSES = (Status.ERRORS, Status.WARNINGS, Status.TIMED_OUT)


def fetch_record_log(
    journal: Journal,
    archive_dir: Path,
    target: Target,
    item: BatchItem,
    stop: threading.Event,
    narrate: Callable[[str], None],
) -> None:
    """Why records failed, from the destination's record log (Learn with REST keys), into the outcome."""
    outcome = item.outcome
    if outcome.status not in RECORD_LOG_STATUSES or outcome.receipt is None:
        return
    if not isinstance(target, RecordLogSource) or outcome.finished_at is None:
        return
    csv_path = archive.record_log_path(outcome.final_path, archive_dir, name=outcome.name, when=outcome.finished_at)
    try:
        finished = outcome.status is not Status.TIMED_OUT
        record = target.record_log(outcome.receipt, csv_path, stop, finished=finished)
    except OSError as exc:
        record = RecordLog(outcome.receipt.reference, complete=False, problem=f"the log could not be saved: {exc}")
    except StopRequested:  # the file is delivered and archived: its report still goes, without the log
        record = RecordLog(outcome.receipt.reference, complete=False, problem="feed-agent was stopped first")
    if record is None:
        return
    outcome.record_log = record
    journal.record_log_saved(item.file_id, record)
    where = record.csv_path or "not saved"
    log.info("record log: %s %s entries %s → %s", outcome.name, record.total, dict(record.counts), where)
    if record.problem:
        log.warning("record log of %s incomplete: %s", outcome.name, record.problem)
    narrate(f"    record log: {record.total} entries → {where}{'; ' + record.problem if record.problem else ''}")
