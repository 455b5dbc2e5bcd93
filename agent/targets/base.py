"""The protocol every destination follows: submit a file, follow it, check the credentials.

Learn, S3 and job targets differ in wire details only; the pipeline sees this interface and never a
protocol detail, so a new destination is one module here (plus its profile in `agent.profiles`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from agent.records import CheckResult, Progress, Receipt, RecordLog, Result, Submission

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

    def check(self, canary: bool = False) -> list[CheckResult]:
        """Reach the destination with the configured credentials without sending data.

        `canary`: where nothing can be checked without writing (a write-only bucket), write one small,
        clearly named marker object; targets that can check without writing ignore it."""
        ...

    def close(self) -> None:
        """Release connections (sessions, pools); the target is not used afterwards."""
        ...


@runtime_checkable
class RecordLogSource(Protocol):
    """A destination that can say why each record failed (Learn with REST keys)."""

    def record_log(
        self, receipt: Receipt, csv_path: Path, stop: threading.Event | None = None, *, finished: bool = True
    ) -> RecordLog | None:
        """Save the record-level log as CSV at `csv_path` and digest it; None when not configured.
        Never raises for a log that cannot be read: the result's `problem` says why. `finished`
        False (TIMED OUT): whatever the log holds now, without waiting for the destination."""
        ...
