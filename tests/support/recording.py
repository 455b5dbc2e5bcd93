"""A Reporter that records what it is told, for pipeline tests that check outcomes, not emails."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from agent.records import BatchOutcome, FileOutcome, JobNotice, TroubleNotice


class RecordingReporter:
    def __init__(self) -> None:
        self.files: list[FileOutcome] = []
        self.batches: list[BatchOutcome] = []
        self.long_runs: list[tuple[str, float]] = []
        self.missing_alerts: list[tuple[str, Path, float, datetime | None]] = []
        self.job_notices: list[JobNotice] = []
        self.not_notified: list[JobNotice] = []
        self.troubles: list[TroubleNotice] = []

    def file_done(self, outcome: FileOutcome) -> None:
        self.files.append(outcome)

    def batch_done(self, batch: BatchOutcome) -> None:
        self.batches.append(batch)

    def still_processing(self, outcome: FileOutcome, minutes: float) -> None:
        self.long_runs.append((outcome.name, minutes))

    def missing(self, route: str, folder: Path, hours: float, last_arrival: datetime | None) -> None:
        self.missing_alerts.append((route, folder, hours, last_arrival))

    def job_finished(self, notice: JobNotice) -> None:
        self.job_notices.append(notice)

    def job_not_notified(self, notice: JobNotice) -> None:
        self.not_notified.append(notice)

    def trouble(self, notice: TroubleNotice) -> None:
        self.troubles.append(notice)
