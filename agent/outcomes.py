"""What happened to a file and to a batch: the records the pipeline hands to reports.

They live in their own module so that reports, the daemon and the CLI can share them without
importing the pipeline (and the pipeline never imports email code).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agent.targets.base import Progress, Receipt


class Status(str, enum.Enum):
    """A file's final status; the values are the words used in email subjects."""

    SUCCESS = "SUCCESS"
    WARNINGS = "WARNINGS"
    ERRORS = "ERRORS"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    HELD = "HELD"
    TIMED_OUT = "TIMED OUT"

    @property
    def ok(self) -> bool:
        """True when the contract's exit status would be 0 for this file."""
        return self is Status.SUCCESS

    @property
    def blocks_dependents(self) -> bool:
        """A file that never reached its destination holds the files that depend on it."""
        return self in (Status.FAILED, Status.TIMED_OUT, Status.REJECTED, Status.HELD)


@dataclass
class FileOutcome:
    """One file's life, from claim to its final folder."""

    name: str  # the name it arrived with (agent stamps removed)
    route: str
    target: str  # target section name
    target_type: str  # learn | s3 | job
    status: Status
    size: int = 0
    rows: int | None = None
    object: str | None = None
    operation: str | None = None
    receipt: Receipt | None = None
    progress: Progress | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    final_path: Path | None = None
    drop_folder: Path | None = None
    message: str = ""  # why, in plain words (empty on success)
    held_by: str | None = None  # the file this one waited for
    sha256: str | None = None
    file_id: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


@dataclass
class BatchOutcome:
    route: str
    started_at: datetime
    finished_at: datetime | None = None
    files: list[FileOutcome] = field(default_factory=list)
    batch_id: int | None = None
    mail_problems: list[str] = field(default_factory=list)  # earlier emails that could not be sent

    @property
    def ok(self) -> bool:
        return all(f.status.ok for f in self.files)

    @property
    def overall(self) -> Status:
        """The worst status in the batch (for the summary subject)."""
        order = [
            Status.SUCCESS,
            Status.WARNINGS,
            Status.ERRORS,
            Status.HELD,
            Status.REJECTED,
            Status.TIMED_OUT,
            Status.FAILED,
        ]
        worst = Status.SUCCESS
        for f in self.files:
            if order.index(f.status) > order.index(worst):
                worst = f.status
        return worst


@dataclass(frozen=True)
class CheckResult:
    """One line of `feed-agent check`: an item, whether it is OK, and the precise problem."""

    item: str
    ok: bool
    detail: str = ""


class Reporter(Protocol):
    """Where the pipeline and daemon send what admins must hear about (emails, logs)."""

    def file_done(self, outcome: FileOutcome) -> None: ...

    def batch_done(self, batch: BatchOutcome) -> None: ...

    def still_processing(self, outcome: FileOutcome, minutes: float) -> None: ...

    def missing(self, route: str, folder: Path, hours: float, last_arrival: datetime | None) -> None: ...
