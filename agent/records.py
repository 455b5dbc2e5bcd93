"""The records every layer shares: what was sent, what the destination said, what happened to a file.

They sit at the bottom of the house (they import nothing but the clock), so the pipeline, the
targets, the journal, the reports and the CLI can all speak of a `Receipt` or a `FileOutcome`
without importing each other.
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agent.clock import utcnow


class Status(str, enum.Enum):
    """A file's final status; the values are the words used in email subjects."""

    SUCCESS = "SUCCESS"
    QUEUED = "QUEUED"  # delivered, and a job that runs later was queued (AlumnIQ); its end is reported apart
    WARNINGS = "WARNINGS"
    ERRORS = "ERRORS"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    HELD = "HELD"
    TIMED_OUT = "TIMED OUT"
    UNCONFIRMED = "UNCONFIRMED"  # the whole body went out, the answer never came: maybe accepted

    @property
    def ok(self) -> bool:
        """True when the contract's exit status would be 0 for this file (a queued job is not a problem yet)."""
        return self in (Status.SUCCESS, Status.QUEUED)

    @property
    def blocks_dependents(self) -> bool:
        """A file that never reached its destination holds the files that depend on it."""
        return self in (Status.FAILED, Status.TIMED_OUT, Status.UNCONFIRMED, Status.REJECTED, Status.HELD)


# Worst last: the summary's overall status is the worst of its files.
SEVERITY = (
    Status.SUCCESS,
    Status.QUEUED,
    Status.WARNINGS,
    Status.ERRORS,
    Status.HELD,
    Status.REJECTED,
    Status.TIMED_OUT,
    Status.UNCONFIRMED,
    Status.FAILED,
)


# (bytes sent so far, bytes in all): called as an upload streams, for `post`'s progress line.
UploadProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Submission:
    """What a target needs to know about the file it sends.

    The two hooks let the pipeline journal the one moment that decides what a crash means: before
    the last byte goes out, a crash leaves an incomplete request the destination cannot accept (the
    file may be sent again); after it, the destination may have the file (UNCONFIRMED, never re-sent).
    A target that can tell calls them; `stop` lets a pause between attempts end early; `on_sent` hears
    how far the upload is.
    """

    path: Path  # where the bytes are now (processing/)
    name: str  # the name the file arrived with
    object: str | None  # Learn slug, or None for non-Learn targets
    operation: str  # store | refresh | refreshlegacy | delete (Learn); upload elsewhere
    rows: int
    non_ascii: bool = False  # decides add_bom = auto
    has_bom: bool = False
    encoding: str = "utf-8"  # as inspected: utf-8, utf-16-le/-be (with its BOM) or latin-1 (never a BOM)
    # Called before the body's last piece is sent, with the SHA-256 (hex) of the file's bytes as sent
    # (the digest of a Learn file comes from its upload's own reads: agent.targets.http.StreamedBody).
    before_last_byte: Callable[[str], None] | None = None
    refused: Callable[[], None] | None = None  # an answer proved it was not taken; it may go again
    stop: threading.Event | None = None  # a stop request ends a pause between attempts
    notify_url: str | None = None  # this job's own notification URL (secret: never logged or reported)
    on_sent: UploadProgress | None = field(default=None, compare=False, repr=False)
    sha256: str | None = None  # the whole file's digest, when known before sending (S3 sends it as its checksum)


@dataclass(frozen=True)
class Receipt:
    """Proof that the destination accepted the file: Learn reference code, S3 key or job id."""

    target: str
    kind: str  # learn | s3 | job
    reference: str  # the code an admin quotes to support
    details: Mapping[str, str] = field(default_factory=dict)
    submitted_at: datetime = field(default_factory=utcnow)

    def to_json(self) -> str:
        return json.dumps(
            {
                "target": self.target,
                "kind": self.kind,
                "reference": self.reference,
                "details": dict(self.details),
                "submitted_at": self.submitted_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Receipt:
        data: dict[str, Any] = json.loads(text)
        return cls(
            target=data["target"],
            kind=data["kind"],
            reference=data["reference"],
            details=data.get("details", {}),
            submitted_at=datetime.fromisoformat(data["submitted_at"]),
        )


@dataclass(frozen=True)
class Progress:
    """One status reading from the destination (Learn's dataSetStatus; S3 and jobs: final at once)."""

    queued: int = 0
    completed: int = 0
    warnings: int = 0
    errors: int = 0
    fields: Mapping[str, str] = field(default_factory=dict)  # every field as the server sent it
    polled_at: datetime = field(default_factory=utcnow)
    eta_seconds: float | None = None  # the agent's estimate of the time left (Learn), when it has one

    @property
    def processed(self) -> int:
        return self.completed + self.warnings + self.errors

    def counts(self) -> tuple[int, int, int, int]:
        return (self.queued, self.completed, self.warnings, self.errors)


@dataclass(frozen=True)
class Result:
    """The end of following a receipt."""

    status: Status
    progress: Progress | None = None
    message: str = ""
    finished_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class LogEntry:
    """One entry of Learn's record-level log, as Learn wrote it (`line` when the message names one)."""

    level: str  # Error | Warning | Information | Debug
    message: str
    line: int | None = None
    created: str = ""
    id: str = ""


@dataclass(frozen=True)
class MessageGroup:
    """Log messages of one shape (keys and numbers replaced by placeholders), with a few examples."""

    level: str
    shape: str
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class RecordLog:
    """What Learn said about a data set's records: counts, groups largest first, the first entries,
    and where the complete log was saved. `problem` says why it is missing or incomplete."""

    reference: str
    counts: Mapping[str, int] = field(default_factory=dict)  # entries per level
    groups: tuple[MessageGroup, ...] = ()
    first: tuple[LogEntry, ...] = ()
    csv_path: Path | None = None
    complete: bool = True
    problem: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class CheckResult:
    """One line of `feed-agent check`: an item, whether it is OK, and the precise problem."""

    item: str
    ok: bool
    detail: str = ""
    warning: bool = False  # OK, but worth a look (e.g. a public webhook URL that is not https)


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
    config_path: Path | None = None  # the configuration in use, for commands the report suggests
    sent_at: datetime | None = None  # when the whole body went out (UNCONFIRMED: when to look for it)
    report_key: str | None = None  # the same for every attempt to send this file's report (no duplicates)
    # Called by the reporter the moment the mailer took the report (the journal marks it sent once).
    reported: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    record_log: RecordLog | None = None  # Learn's record-level log, when REST keys are configured
    not_moved: str = ""  # why the file is still in processing/ (its folder could not take it); moved later
    entry_kind: str | None = None  # "folder", "symbolic link", "named pipe"…: not a regular file, never sent
    changed_in_flight: bool = False  # its writer changed it while it was sent: the destination has part of it
    notice: str = ""  # unusual but sent: a store far below its feed's usual size
    keys_csv: Path | None = None  # held by a guard: every key it would disable or delete (attached)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


@dataclass(frozen=True)
class FeedPoint:
    """One delivery of a feed, for the history chart (or this batch's file, delivered or not)."""

    file_id: int
    when: datetime | None
    rows: int | None
    status: str
    disabled: int | None = None  # refresh: keys of the last delivery missing from this file
    added: int | None = None
    current: bool = False  # a file of the batch being reported ("today")


@dataclass(frozen=True)
class FeedHistory:
    """A feed's latest deliveries, oldest first: a feed is a route's object and operation."""

    route: str
    object: str
    operation: str
    points: tuple[FeedPoint, ...]


@dataclass
class BatchOutcome:
    route: str
    started_at: datetime
    finished_at: datetime | None = None
    files: list[FileOutcome] = field(default_factory=list)
    batch_id: int | None = None
    mail_problems: list[str] = field(default_factory=list)  # earlier emails that could not be sent
    report_key: str | None = None  # the same for every attempt to send this summary (no duplicates)
    reported: Callable[[], None] | None = field(default=None, compare=False, repr=False)  # as FileOutcome's
    history: list[FeedHistory] = field(default_factory=list)  # each feed's last deliveries (summary chart)

    @property
    def ok(self) -> bool:
        return all(f.status.ok for f in self.files)

    @property
    def overall(self) -> Status:
        """The worst status in the batch (for the summary subject)."""
        return max((f.status for f in self.files), key=SEVERITY.index, default=Status.SUCCESS)


@dataclass(frozen=True)
class JobNotice:
    """A queued job's end as AlumnIQ told it (SUCCESS / FAILED), or its silence past the deadline.

    `status` is None for the NOT NOTIFIED alert; `late` marks a notification that came after it.
    """

    name: str  # the file the job consumes
    route: str
    target: str
    job_id: str
    queued_at: datetime | None
    notify_by: datetime | None
    status: Status | None = None
    message: str = ""  # AlumnIQ's own words
    finished_at: datetime | None = None  # when the notification arrived
    late: bool = False
    location: str | None = None  # where the delivered file is now (archive/)
    drop_folder: str | None = None  # where to move it back to reprocess


@dataclass(frozen=True)
class TroubleNotice:
    """A failure episode: one step (`key`) that keeps failing the same way, told once when it starts
    and once when it clears (`cleared_at`)."""

    key: str  # "recovery", "route:NAME", "drop:PATH", "archive", "failed", "loop", "housekeeping"
    problem: str  # the latest error, in one line
    advice: str  # what the admin can do about it
    since: datetime
    attempts: int
    retry_seconds: float | None = None  # the pause before the next attempt (None once cleared)
    cleared_at: datetime | None = None


REPORT_KEY_HEADER = "X-Feed-Agent-Report"  # carries report_key in a spooled message


def file_report_key(file_id: int) -> str:
    return f"file-{file_id}"


def batch_report_key(batch_id: int) -> str:
    return f"batch-{batch_id}"


def parse_report_key(key: str) -> tuple[str, int] | None:
    """`file-17` -> ("file", 17); None for anything else (a message from an older version)."""
    kind, _, number = key.strip().partition("-")
    if kind not in ("file", "batch") or not number.isdigit():
        return None
    return kind, int(number)


class Reporter(Protocol):
    """Where the pipeline and daemon send what admins must hear about (emails, logs)."""

    def file_done(self, outcome: FileOutcome) -> None: ...

    def batch_done(self, batch: BatchOutcome) -> None: ...

    def still_processing(self, outcome: FileOutcome, minutes: float) -> None: ...

    def missing(self, route: str, folder: Path, hours: float, last_arrival: datetime | None) -> None: ...

    def job_finished(self, notice: JobNotice) -> None: ...

    def job_not_notified(self, notice: JobNotice) -> None: ...

    def trouble(self, notice: TroubleNotice) -> None: ...
