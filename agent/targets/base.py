"""The protocol every destination follows: submit a file, follow it, check the credentials.

Learn, S3 and job targets differ in wire details only; the pipeline sees this interface and never a
protocol detail, so a new destination is one module here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent.outcomes import CheckResult, Status


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Submission:
    """What a target needs to know about the file it sends."""

    path: Path  # where the bytes are now (processing/)
    name: str  # the name the file arrived with
    object: str | None  # Learn slug, or None for non-Learn targets
    operation: str  # store | refresh | refreshlegacy | delete (Learn)
    rows: int
    non_ascii: bool = False  # decides add_bom = auto
    has_bom: bool = False


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


class TargetError(Exception):
    """A failure explained in plain words, safe to show (never contains a secret).

    `retryable` tells the caller whether the same request could succeed later (network, 5xx);
    401/403/404 and rejections are final.
    """

    def __init__(self, message: str, *, retryable: bool = False, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.http_status = http_status


class StopRequested(Exception):
    """Raised by wait() when the daemon is stopping; the file stays in processing with its receipt."""


ProgressCallback = Callable[[Progress], None]


class Target(Protocol):
    name: str
    kind: str

    def submit(self, submission: Submission) -> Receipt:
        """Send the file (streamed, never read whole). Raises TargetError."""
        ...

    def status(self, receipt: Receipt) -> Progress:
        """One status reading. Raises TargetError."""
        ...

    def wait(
        self,
        receipt: Receipt,
        expected_rows: int,
        *,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Result:
        """Follow the receipt to a terminal Result (SUCCESS/WARNINGS/ERRORS/FAILED/TIMED OUT).
        Raises StopRequested when `stop` is set."""
        ...

    def check(self) -> list[CheckResult]:
        """Reach the destination with the configured credentials without sending data."""
        ...
