"""Following a Learn data set: reading `dataSetStatus`, pacing the polls, deciding when Learn is done.

The done rule (reference §4, recommended): queuedCount = 0 and (every row accounted for, or the
counts stopped moving after Learn processed something), under an overall timeout; a zero
queuedCount just after the upload can be a false "done". Status XML is parsed only after refusing
DTDs and entities, so a hostile or broken proxy cannot make the agent expand entities.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable

from agent.clock import Clock
from agent.errors import StopRequested, TargetError
from agent.records import Progress, Receipt, Result, Status
from agent.retry import RetryPolicy
from agent.settings import LearnTargetSettings
from agent.targets.base import ProgressCallback
from agent.targets.http import start
from agent.targets.pacing import PollPacer, Reading

log = logging.getLogger(__name__)

UNCHANGED_POLLS_FOR_DONE = 3  # queued 0 and counts still for this many polls: Learn is done
_DANGEROUS_XML = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_COUNTS = {"queued": "queuedCount", "completed": "completedCount", "warnings": "warningCount", "errors": "errorCount"}


def parse_status(body: str) -> Progress:
    """A dataSetStatus document as Progress, every field kept. Raises TargetError if unusable."""
    if _DANGEROUS_XML.search(body):
        raise TargetError(
            "Learn's status answer contains a DOCTYPE or ENTITY declaration; it was not parsed "
            "(a proxy or server answering in Learn's place?)",
            retryable=True,
        )
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise TargetError(
            f"Learn's status answer is not XML ({exc}); it began: {start(body)}", retryable=True
        ) from None
    if _local(root.tag) != "dataSetStatus":
        raise TargetError(
            f"Learn's status answer is <{_local(root.tag)}>, not <dataSetStatus>; it began: {start(body)}",
            retryable=True,
        )
    fields: dict[str, str] = {}
    for child in root:
        tag = _local(child.tag)
        fields[tag] = (child.text or "").strip()
        for attribute, value in child.attrib.items():
            fields[f"{tag}@{_local(attribute)}"] = value
    counts: dict[str, int] = {}
    for name, tag in _COUNTS.items():
        try:
            # A missing warning or error count reads as none reported; queued and completed are required.
            counts[name] = int(fields.get(tag, "0") if name in ("warnings", "errors") else fields[tag])
        except (KeyError, ValueError):
            raise TargetError(
                f"Learn's status answer has no usable {tag}; it began: {start(body)}", retryable=True
            ) from None
    return Progress(
        queued=counts["queued"],
        completed=counts["completed"],
        warnings=counts["warnings"],
        errors=counts["errors"],
        fields=fields,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class Follower:
    """The state of one wait(): poll pacing, riding out failed polls, the done rule, the timeout.

    An accepted upload is Learn's to finish, so failed status polls (network trouble, 5xx, a broken
    answer) are waited out until `timeout_minutes`, paced by the one retry policy (honouring
    Retry-After); only a refused password ends the wait early, since retrying it locks accounts.
    """

    def __init__(
        self,
        read_status: Callable[[Receipt], Progress],
        settings: LearnTargetSettings,
        clock: Clock,
        receipt: Receipt,
        expected_rows: int,
        on_progress: ProgressCallback | None,
        stop: threading.Event | None,
    ) -> None:
        self.read_status = read_status
        self.settings = settings
        self.clock = clock
        self.receipt = receipt
        self.expected_rows = expected_rows
        self.on_progress = on_progress
        self.stop = stop
        started = clock.monotonic()
        self.pacer = PollPacer(started, settings.poll_initial_seconds, settings.poll_max_seconds)
        self.failure_pacing = RetryPolicy(first_delay=self.pacer.initial, cap=self.pacer.maximum)
        self.deadline = started + settings.timeout_minutes * 60.0
        self.last: Progress | None = None
        self.unchanged = 0
        self.failures = 0  # failed polls in a row
        self.failures_seen = 0  # failed polls in all
        self.last_problem = ""
        self.pause = 0.0  # the first reading is taken at once: a small set is often done already

    def run(self) -> Result:
        while True:
            self._check_stop()
            remaining = self.deadline - self.clock.monotonic()
            if remaining <= 0:
                return self._timed_out()
            if self.pause > 0:
                if self.clock.sleep(min(self.pause, remaining), self.stop):
                    raise StopRequested()
                self._check_stop()
            before = self.clock.monotonic()
            try:
                progress = self.read_status(self.receipt)
            except TargetError as exc:
                final = self._poll_failed(exc)
                if final is not None:
                    return final
                continue
            now = self.clock.monotonic()
            self.failures = 0
            progress = self._observed(progress, (before + now) / 2, now)
            if self.on_progress is not None:
                self.on_progress(progress)
            if self._done(progress):
                return finished(progress, self.receipt)
            self.pause = self.pacer.next_pause(self.clock.monotonic())

    def _observed(self, progress: Progress, at: float, now: float) -> Progress:
        """Feeds the pacer and returns the reading with Learn's estimated time left, when known."""
        left = max(progress.queued, self.expected_rows - progress.processed, 0)
        self.pacer.observe(Reading(at=at, processed=progress.processed, remaining=left))
        eta = self.pacer.eta(now)
        return progress if eta is None else dataclasses.replace(progress, eta_seconds=eta)

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise StopRequested()

    def _done(self, progress: Progress) -> bool:
        if self.last is not None and progress.counts() == self.last.counts():
            self.unchanged += 1
        else:
            self.unchanged = 0
        self.last = progress
        if progress.queued != 0:
            return False
        if progress.processed >= self.expected_rows:
            return True
        # Counts that stopped moving end the wait, but only once Learn has processed something: a data
        # set that still reads all zeros may simply not have started.
        return progress.processed > 0 and self.unchanged >= UNCHANGED_POLLS_FOR_DONE

    def _poll_failed(self, exc: TargetError) -> Result | None:
        reference = self.receipt.reference
        if exc.http_status in (401, 403):
            return Result(
                Status.FAILED,
                self.last,
                f"The upload was accepted (reference code {reference}), "
                f"but its status could not be read: {exc.message}",
            )
        self.failures += 1
        self.failures_seen += 1
        self.last_problem = exc.message
        self.pause = self.failure_pacing.delay(self.failures, exc.retry_after)
        log.warning(
            "status of %s could not be read (%d in a row); trying again in %.1f s: %s",
            reference,
            self.failures,
            self.pause,
            exc.message,
        )
        return None

    def _timed_out(self) -> Result:
        minutes = self.settings.timeout_minutes
        reference = self.receipt.reference
        errors = ""
        if self.failures_seen:
            errors = (
                f" {self.failures_seen} status {'poll' if self.failures_seen == 1 else 'polls'} failed along "
                f"the way; the last problem: {self.last_problem}."
            )
        if self.last is None:
            return Result(
                Status.TIMED_OUT,
                None,
                f"The upload was accepted (reference code {reference}), but its status could not be read "
                f"in {minutes:g} minutes.{errors} Look the reference code up in Learn's SIS framework "
                f"logs before sending the file again.",
            )
        q, c, w, e = self.last.counts()
        return Result(
            Status.TIMED_OUT,
            self.last,
            f"Learn was still processing reference code {reference} after {minutes:g} minutes (last "
            f"reading: {q} queued, {c} completed, {w} warnings, {e} errors).{errors} The upload was "
            f"accepted; follow it in Learn's SIS framework logs.",
        )


def finished(progress: Progress, receipt: Receipt) -> Result:
    counts = (
        f"{progress.completed} completed, {progress.warnings} with warnings, "
        f"{progress.errors} with errors (reference code {receipt.reference})"
    )
    if progress.errors > 0:
        return Result(
            Status.ERRORS,
            progress,
            f"Learn processed the file with record errors: {counts}. The details are in Learn's "
            f"SIS framework logs under the reference code.",
        )
    if progress.warnings > 0:
        return Result(Status.WARNINGS, progress, f"Learn processed the file with warnings: {counts}.")
    return Result(Status.SUCCESS, progress, "")
